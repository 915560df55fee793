"""A SIGKILL between a batch's blob writes and its commit (crash point
``after-blob-write-before-commit``): no row refers to a missing blob, and a restarted engine
finishes the instance with the real values."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from tests.integration.engine_harness import engine_on

from cadenza.application.payloads import MARKER
from cadenza.domain.status import InstanceStatus
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import events, instances, tasks

ROOT = Path(__file__).resolve().parents[2]
TEXT = "crash-" + "c" * 3000
OPTIONS: dict[str, object] = {
    "payload_offload_bytes": 256,
    "worker_id": "payload-crash",  # a restart releases the dead run's claims at once
    "lease_s": 1.0,
}

CHILD = """
import asyncio, json, sys
from cadenza.bootstrap import build
from cadenza.domain.commands import StartInstance
from cadenza.settings import Settings

async def main() -> None:
    options = json.loads(sys.argv[3])
    rt = await build(Settings(database_url=sys.argv[1], blob_dir=sys.argv[2],
                              failpoints="after-blob-write-before-commit:2", **options))
    await rt.start()
    await rt.definitions.publish(json.loads(sys.argv[4]))
    await rt.engine.submit(StartInstance("p", {"text": sys.argv[5]}))
    await asyncio.Event().wait()  # the crash point kills this process first

asyncio.run(main())
"""

DOC = {
    "schema": "cadenza/v1",
    "id": "p",
    "name": "t",
    "nodes": [
        {"id": "a", "type": "transform", "config": {"output": "{{ inputs.text }}"}},
        {"id": "pause", "type": "wait", "config": {"duration": "100ms"}},
        {"id": "b", "type": "transform", "config": {"output": "{{ nodes.a.output }}!"}},
    ],
    "edges": [{"from": "a", "to": "pause"}, {"from": "pause", "to": "b"}],
    "outputs": {"text": "{{ nodes.b.output }}"},
}


def markers(value: object) -> list[dict[str, object]]:
    """The blob markers at the top of a slot or of an event's data fields."""
    if isinstance(value, dict) and value.get(MARKER) == "blob":
        return [value]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, dict) and v.get(MARKER) == "blob"]
    return []


async def dangling(store: SqlStore, blob_dir: Path) -> list[str]:
    """Refs in any row whose blob file is missing."""
    found: list[dict[str, object]] = []
    async with store.engine.connect() as conn:
        for r in await conn.execute(sa.select(instances.c.inputs, instances.c.outputs)):
            found += markers(r.inputs) + markers(r.outputs)
        for r in await conn.execute(sa.select(tasks.c.output, tasks.c.detail)):
            found += markers(r.output) + markers(r.detail)
        for r in await conn.execute(sa.select(events.c.data)):
            found += markers(r.data)
    assert found, "no marker at all: the test offloaded nothing"
    return [str(m["ref"]) for m in found if not (blob_dir / str(m["ref"])).is_file()]


async def test_a_kill_between_blob_write_and_commit_leaves_no_dangling_ref(
    database_url: str, tmp_path: Path
) -> None:
    blob_dir = tmp_path / "blobs"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    args = [database_url, str(blob_dir), json.dumps(OPTIONS), json.dumps(DOC), TEXT]
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "failpoint after-blob-write-before-commit triggered (pass 2)" in child.stderr
    after_kill = SqlStore(create_engine(database_url))
    try:
        [row] = await after_kill.list_instances()
        assert row.status == "running"  # the batch that would have finished it was lost
        assert await dangling(after_kill, blob_dir) == []
    finally:
        await after_kill.close()
    async with engine_on(database_url, blob_dir=str(blob_dir), **OPTIONS) as rt:
        assert isinstance(rt.store, SqlStore)
        done = await asyncio.wait_for(rt.engine.wait_finished(row.id), 30)
        assert done.status is InstanceStatus.COMPLETED, done.error
        assert done.outputs == {"text": TEXT + "!"}
        assert await dangling(rt.store, blob_dir) == []
