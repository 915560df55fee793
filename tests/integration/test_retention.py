"""Retention on every SQL backend, with a fake clock: what is deleted (due finished instances
and every row of theirs, in batches) and what never is (running instances, held ones, failed
ones before their longer age, another workspace's, a subprocess before its parent).

Rows are planted directly: an instance row and one row in every table with an
``instance_id`` column (walked from ``tables``), so a table added tomorrow is covered too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.integration.engine_harness import doc, engine_on, run, start
from tests.integration.planted_rows import column_value
from tests.pg import BACKENDS, backend_url

from cadenza.application.ports_retention import LegalHold, StoredPolicy
from cadenza.application.readiness import ServiceRole
from cadenza.application.retention_job import RetentionJob, RetentionRun, RetentionSettings
from cadenza.bootstrap import build
from cadenza.domain.retention import RetentionPolicy
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.retention import SqlRetention, instance_tables
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import instances
from cadenza.settings import Settings

NOW = 10_000_000.0
DAY = 86_400.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at


async def no_pause(_: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    await asyncio.to_thread(upgrade, database_url)
    s = SqlStore(create_engine(database_url))
    try:
        yield s
    finally:
        await s.close()


async def plant(
    store: SqlStore,
    iid: str,
    *,
    ws: str = "a",
    status: str = "completed",
    age_s: float = 30 * DAY,
    parent: str | None = None,
) -> None:
    """An instance that last changed ``age_s`` before NOW, with a row in every table of it."""
    row = {
        "id": iid,
        "workspace_id": ws,
        "process_id": "p",
        "version": 1,
        "status": status,
        "inputs": {},
        "parent_instance_id": parent,
        "created_at": NOW - age_s - 1,
        "updated_at": NOW - age_s,
        "seq": 1,
    }
    await store.execute(instances.insert(), [row])
    for table in instance_tables():
        values: dict[str, object] = {}
        for c in table.columns:
            if c.name == "instance_id":
                values[c.name] = iid
            elif c.name == "workspace_id":
                values[c.name] = ws
            elif c.primary_key and c.autoincrement is True:
                continue
            elif not c.nullable or c.primary_key:
                values[c.name] = column_value(c, iid)
        await store.execute(table.insert(), [values])


async def rows_of(store: SqlStore, ids: Sequence[str]) -> dict[str, int]:
    """Rows of these instances in ``instances`` and in every table of theirs."""
    out: dict[str, int] = {}
    async with store.engine.connect() as conn:
        out["instances"] = int(
            await conn.scalar(
                sa.select(sa.func.count()).select_from(instances).where(instances.c.id.in_(ids))
            )
            or 0
        )
        for t in instance_tables():
            stmt = sa.select(sa.func.count()).select_from(t).where(t.c.instance_id.in_(ids))
            out[t.name] = int(await conn.scalar(stmt) or 0)
    return out


def every_table(n: int) -> dict[str, int]:
    return {"instances": n, **{t.name: n for t in instance_tables()}}


def job(
    store: SqlStore,
    default: RetentionPolicy | None = None,
    *,
    batch: int = 500,
    seen: list[Mapping[str, int]] | None = None,
    at: float = NOW,
) -> RetentionJob:
    settings = RetentionSettings(default or RetentionPolicy(), batch=batch, pause_s=0.01)
    on_batch = (lambda c: seen.append(dict(c))) if seen is not None else (lambda c: None)
    return RetentionJob(
        SqlRetention(store), FakeClock(at), settings, on_batch=on_batch, sleep=no_pause
    )


async def policy(
    store: SqlStore, ws: str, finished_s: float | None, failed_s: float | None = None
) -> None:
    p = RetentionPolicy(finished_s, failed_s)
    await SqlRetention(store).put_policy(StoredPolicy(ws, p, NOW, "user:test"))


# ---- what is deleted -------------------------------------------------------------------------
async def test_due_finished_instances_go_with_a_row_in_every_table_of_theirs(
    store: SqlStore,
) -> None:
    assert {"events", "tasks", "timers", "feed", "outbox", "assignments"} <= {
        t.name for t in instance_tables()
    }
    await plant(store, "done", status="completed", age_s=2 * DAY)
    await plant(store, "stopped", status="cancelled", age_s=2 * DAY)
    await plant(store, "recent", status="completed", age_s=DAY / 2)
    await policy(store, "a", DAY)
    run = await job(store).run_once()
    assert run.instances == 2
    assert run.deleted == every_table(2)
    assert await rows_of(store, ["done", "stopped"]) == every_table(0)
    assert await rows_of(store, ["recent"]) == every_table(1)


async def test_a_run_with_more_due_than_a_batch_deletes_them_in_several_batches(
    store: SqlStore,
) -> None:
    for i in range(5):
        await plant(store, f"old{i}")
    await policy(store, "a", DAY)
    seen: list[Mapping[str, int]] = []
    run = await job(store, batch=2, seen=seen).run_once()
    assert [c["instances"] for c in seen] == [2, 2, 1]
    assert (run.batches, run.instances) == (3, 5)
    assert await rows_of(store, [f"old{i}" for i in range(5)]) == every_table(0)


# ---- what is never deleted -------------------------------------------------------------------
async def test_running_instances_are_never_deleted_whatever_their_age(store: SqlStore) -> None:
    await plant(store, "ancient-running", status="running", age_s=3650 * DAY)
    await policy(store, "a", 60, 60)
    run = await job(store, RetentionPolicy(60, 60)).run_once()
    assert run.instances == 0
    assert await rows_of(store, ["ancient-running"]) == every_table(1)


async def test_failed_instances_are_kept_for_their_longer_age(store: SqlStore) -> None:
    await plant(store, "completed", status="completed", age_s=2 * DAY)
    await plant(store, "failed-2d", status="failed", age_s=2 * DAY)
    await plant(store, "failed-8d", status="failed", age_s=8 * DAY)
    await policy(store, "a", DAY, 7 * DAY)
    run = await job(store).run_once()
    assert run.instances == 2
    assert await rows_of(store, ["completed", "failed-8d"]) == every_table(0)
    assert await rows_of(store, ["failed-2d"]) == every_table(1)
    later = await job(store, at=NOW + 6 * DAY).run_once()
    assert later.instances == 1
    assert await rows_of(store, ["failed-2d"]) == every_table(0)


async def test_a_legal_hold_keeps_an_instance_until_it_is_released(store: SqlStore) -> None:
    retention = SqlRetention(store)
    await plant(store, "evidence", age_s=400 * DAY)
    await plant(store, "other", age_s=400 * DAY)
    hold = LegalHold("evidence", "a", "case 42", "user:legal", NOW)
    assert await retention.set_hold(hold) == hold
    assert await retention.set_hold(LegalHold("evidence", "b", None, "user:x", NOW)) is None
    assert await retention.set_hold(LegalHold("missing", "a", None, "user:x", NOW)) is None
    await policy(store, "a", 60, 60)
    run = await job(store, RetentionPolicy(60, 60)).run_once()
    assert run.instances == 1
    assert await rows_of(store, ["evidence"]) == every_table(1)
    assert await rows_of(store, ["other"]) == every_table(0)
    assert await retention.hold("a", "evidence") == hold
    assert await retention.clear_hold("b", "evidence") is False  # another workspace's id
    assert await retention.clear_hold("a", "evidence") is True
    released = await job(store).run_once()
    assert released.instances == 1
    assert await rows_of(store, ["evidence"]) == every_table(0)


async def test_holds_are_listed_per_workspace_newest_first(store: SqlStore) -> None:
    retention = SqlRetention(store)
    for iid, ws in (("first", "a"), ("second", "a"), ("third", "a"), ("theirs", "b")):
        await plant(store, iid, ws=ws)
    held = [
        LegalHold("first", "a", None, "user:x", NOW),
        LegalHold("second", "a", "case 7", "user:y", NOW + 1),
        LegalHold("third", "a", None, "key:k", NOW + 2),
        LegalHold("theirs", "b", None, "user:z", NOW + 3),
    ]
    for hold in held:
        assert await retention.set_hold(hold) == hold
    assert await retention.holds("a", 10) == [held[2], held[1], held[0]]
    assert await retention.holds("a", 2) == [held[2], held[1]]
    assert await retention.holds("b", 10) == [held[3]]
    assert await retention.clear_hold("a", "second") is True
    assert await retention.holds("a", 10) == [held[2], held[0]]
    assert await retention.holds("c", 10) == []


async def test_a_workspace_policy_never_deletes_another_workspace_rows(store: SqlStore) -> None:
    for ws in ("a", "b", "c"):
        await plant(store, f"{ws}-old", ws=ws)
    await policy(store, "a", DAY)
    assert (await job(store).run_once()).instances == 1
    assert await rows_of(store, ["b-old", "c-old"]) == every_table(2)
    # the default applies to workspaces without a policy of their own; b keeps everything
    await policy(store, "b", None)
    run = await job(store, RetentionPolicy(DAY)).run_once()
    assert run.instances == 1
    assert await rows_of(store, ["c-old"]) == every_table(0)
    assert await rows_of(store, ["b-old"]) == every_table(1)


async def test_a_subprocess_instance_goes_only_after_its_parent(store: SqlStore) -> None:
    await plant(store, "parent", age_s=30 * DAY)
    await plant(store, "child", age_s=30 * DAY, parent="parent")
    await SqlRetention(store).set_hold(LegalHold("parent", "a", None, "user:legal", NOW))
    await policy(store, "a", DAY)
    assert (await job(store).run_once()).instances == 0  # the held parent keeps its child
    await SqlRetention(store).clear_hold("a", "parent")
    assert (await job(store).run_once()).instances == 1
    assert await rows_of(store, ["parent"]) == every_table(0)
    assert await rows_of(store, ["child"]) == every_table(1)
    assert (await job(store).run_once()).instances == 1
    assert await rows_of(store, ["child"]) == every_table(0)


async def test_nothing_is_deleted_unless_a_policy_says_so(store: SqlStore) -> None:
    await plant(store, "forever", age_s=3650 * DAY)
    run: RetentionRun = await job(store).run_once()
    assert (run.scopes, run.batches, run.instances) == (0, 0, 0)
    assert await rows_of(store, ["forever"]) == every_table(1)


# ---- beside the engine -----------------------------------------------------------------------
async def test_instances_the_engine_ran_leave_no_row_behind_and_it_keeps_running(
    database_url: str,
) -> None:
    hello = doc([{"id": "t", "type": "transform", "config": {"output": "hi"}}], id="hello")
    ask = doc([{"id": "ask", "type": "approval", "config": {"title": "ok?"}}], id="ask")
    async with engine_on(database_url) as rt:
        assert isinstance(rt.store, SqlStore)
        done = [(await run(rt, hello)).id for _ in range(3)]
        waiting = await start(rt, ask)
        far = rt.retention.job.settings if rt.retention else None
        assert far is not None
        assert far.default.keeps_everything  # nothing unless configured
        await policy(rt.store, "default", 60, 60)
        retention = job(rt.store, at=rt.engine.clock.now() + 2 * DAY)
        result = await retention.run_once()
        assert result.instances == 3
        assert await rows_of(rt.store, done) == every_table(0)
        kept = await rows_of(rt.store, [waiting])
        assert kept["instances"] == 1
        assert min(kept["events"], kept["tasks"]) > 0
        after = await run(rt, hello)  # the engine goes on as before
        assert after.status.value == "completed"


async def test_the_agents_service_runs_the_job_under_its_lease_with_metrics(
    tmp_path: Path,
) -> None:
    """As deployed: ``cadenza agents`` takes lease ``retention`` and runs the job with the
    system default from settings; a worker beside it never does."""
    url = f"sqlite:///{tmp_path}/c.db"
    await asyncio.to_thread(upgrade, url)
    planted = SqlStore(create_engine(url))
    try:
        await plant(planted, "old", ws="default", age_s=NOW - time.time() + 30 * DAY)
        await plant(planted, "young", ws="default", age_s=NOW - time.time())
    finally:
        await planted.close()
    settings = Settings(database_url=url, retention_finished_s=DAY, agent_health_interval_s=60)
    worker = await build(settings, role=ServiceRole.WORKER)
    agents = await build(settings, role=ServiceRole.AGENTS)
    try:
        await worker.start()
        await agents.start()
        assert agents.retention is not None
        async with asyncio.timeout(30):
            while agents.retention.job.last_run is None:
                await asyncio.sleep(0.01)
        assert agents.retention.job.last_run.instances == 1
        registry = agents.metrics.registry
        assert (
            registry.get_sample_value("cadenza_retention_deleted_total", {"kind": "instances"}) == 1
        )
        assert registry.get_sample_value("cadenza_retention_leader") == 1
        assert registry.get_sample_value("cadenza_retention_runs_total") == 1
        assert registry.get_sample_value("cadenza_retention_last_run_timestamp_seconds") == (
            agents.retention.job.last_run.started_at
        )
        assert worker.retention is not None
        assert worker.retention.job.last_run is None
        assert worker.metrics.registry.get_sample_value("cadenza_retention_leader") == 0
        assert isinstance(agents.store, SqlStore)
        assert await rows_of(agents.store, ["old"]) == every_table(0)
        assert await rows_of(agents.store, ["young"]) == every_table(1)
    finally:
        await agents.close()
        await worker.close()


@pytest.fixture(params=BACKENDS[1:])  # the backends with row locks
async def locking_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    url = backend_url(request, tmp_path)
    await asyncio.to_thread(upgrade, url)
    s = SqlStore(create_engine(url))
    try:
        yield s
    finally:
        await s.close()


async def test_an_instance_row_locked_elsewhere_is_left_for_the_next_run(
    locking_store: SqlStore,
) -> None:
    """A hold request (or the engine) holding an instance's row: the batch skips it rather
    than wait (``SKIP LOCKED``) and takes the others; the next run takes it."""
    store = locking_store
    await plant(store, "busy")
    await plant(store, "free")
    await policy(store, "a", DAY)
    async with store.engine.connect() as other:
        tx = await other.begin()
        lock = sa.select(instances.c.id).where(instances.c.id == "busy").with_for_update()
        assert await other.scalar(lock) == "busy"
        run = await job(store).run_once()
        assert run.instances == 1
        assert await rows_of(store, ["free"]) == every_table(0)
        await tx.rollback()
    assert (await job(store).run_once()).instances == 1
    assert await rows_of(store, ["busy"]) == every_table(0)
