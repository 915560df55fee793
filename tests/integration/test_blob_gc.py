"""The orphan blob collector beside a real database: instance prefixes without an instance
row and older than a day go; a live instance's, or a young orphan's, stay."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cadenza.application.blob_gc import BlobCollector
from cadenza.application.payload_blobs import blob_key
from cadenza.application.retention_job import RetentionJob, RetentionSettings
from cadenza.domain.retention import RetentionPolicy
from cadenza.infrastructure.blobs.files import FileBlobStore
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.retention import SqlRetention
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import instances

DAY = 86_400.0


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[SqlStore]:
    await asyncio.to_thread(upgrade, database_url)
    s = SqlStore(create_engine(database_url), blobs=FileBlobStore(tmp_path / "blobs"))
    try:
        yield s
    finally:
        await s.close()


async def plant(store: SqlStore, ws: str, iid: str, age_s: float, row: bool) -> None:
    assert store.blobs is not None
    key = blob_key(ws, iid, "ab" * 32)
    await store.blobs.put(key, b'"x"')
    assert isinstance(store.blobs, FileBlobStore)
    at = time.time() - age_s
    os.utime(store.blobs.root / key, (at, at))
    if row:
        values = {
            "id": iid,
            "workspace_id": ws,
            "process_id": "p",
            "version": 1,
            "status": "completed",
            "inputs": {},
            "created_at": at,
            "updated_at": at,
            "seq": 1,
        }
        await store.execute(instances.insert(), [values])


async def test_old_orphans_go_and_everything_else_stays(store: SqlStore, tmp_path: Path) -> None:
    await plant(store, "ws", "orphan-old", 2 * DAY, row=False)
    await plant(store, "ws", "orphan-young", 60, row=False)
    await plant(store, "ws", "alive-old", 2 * DAY, row=True)
    await plant(store, "other", "orphan-old", 3 * DAY, row=False)
    assert store.blobs is not None
    collector = BlobCollector(store.blobs, SqlRetention(store).present, Clock(time.time()), page=2)
    deleted = 0
    for _ in range(3):  # pages of two, then the cursor wraps around
        deleted += await collector.collect_once()
    assert deleted == 2
    root = tmp_path / "blobs"
    assert not (root / "ws" / "orphan-old").exists()
    assert not (root / "other" / "orphan-old").exists()
    assert (root / "ws" / "orphan-young").is_dir()
    assert (root / "ws" / "alive-old").is_dir()


async def test_the_retention_job_runs_a_page_of_the_collector(store: SqlStore) -> None:
    await plant(store, "ws", "lost-start", 2 * DAY, row=False)
    assert store.blobs is not None
    clock = Clock(time.time())
    sql = SqlRetention(store)
    collector = BlobCollector(store.blobs, sql.present, clock)
    seen: list[dict[str, int]] = []
    job = RetentionJob(
        sql,
        clock,
        RetentionSettings(RetentionPolicy()),
        on_batch=lambda c: seen.append(dict(c)),
        collect_blobs=collector.collect_once,
    )
    run = await job.run_once()
    assert run.deleted == {"orphan_blobs": 1}
    assert seen == [{"orphan_blobs": 1}]
