"""Requeue accounting: a worker killed again and again while it holds the same long task does not
use up the task's ``max_requeues`` (default 10); only a lease that *expires* is charged."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.crash.forkserver import ForkServer
from tests.crash.workload import SideEffects, side_effect_server

from cadenza.bootstrap import build
from cadenza.domain import events as ev
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings

KILLS = 50
ARRIVAL_TIMEOUT_S = 60.0


def _doc(url: str) -> JSONObject:
    return {
        "schema": "cadenza/v1",
        "id": "long-call",
        "name": "one long http call",
        "nodes": [
            {
                "id": "call",
                "type": "http",
                "timeout": "10m",
                "config": {"method": "POST", "url": url, "json": {"value": 4, "round": 2}},
            }
        ],
        "outputs": {"result": "{{ nodes.call.output.body.result }}"},
    }


@pytest.fixture
async def side() -> AsyncIterator[SideEffects]:
    async with side_effect_server() as server:
        server.hold = asyncio.Event()  # every call stays in flight until the test releases it
        yield server


async def test_worker_killed_50_times_holding_one_task_still_completes_it(
    fork: ForkServer, side: SideEffects, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    # the defaults: max_requeues=10, lease_s=30; one stable worker identity, as in production;
    # no poison-task limit: 50 deaths while holding one task is what it would stop at 3
    config: dict[str, object] = {
        "database_url": url,
        "worker_id": "the-worker",
        "egress_allowed_hosts": ["127.0.0.1"],
        "task_max_crashes": 0,
    }
    assert Settings(**config).max_requeues == 10  # type: ignore[arg-type]
    rt = await build(Settings(**config), run_worker=False)  # type: ignore[arg-type]
    await rt.engine.start()
    try:
        await rt.definitions.publish(_doc(side.url))
        iid = str(await rt.engine.submit(StartInstance("long-call", {})))
    finally:
        await rt.close()
    log = tmp_path / "children.log"
    assert side.hold is not None
    for _ in range(KILLS):
        side.arrived.clear()
        child = await fork.spawn(config, log)
        await asyncio.wait_for(side.arrived.wait(), ARRIVAL_TIMEOUT_S)  # it holds the task
        os.kill(child.pid, signal.SIGKILL)
        assert await child.exit_code() == -signal.SIGKILL
    side.hold.set()
    assert await (await fork.spawn(config, log)).exit_code() == 0

    store = SqlStore(create_engine(url))
    try:
        row = await store.get_instance(iid)
        journal = [e for _, e in await store.journal(iid)]
        (task,) = [t for t in await store.task_rows(iid) if t["node_id"] == "call"]
    finally:
        await store.close()
    assert row is not None
    assert (row.status, row.outputs, row.error) == ("completed", {"result": 42}, None)
    requeues = [e for e in journal if isinstance(e, ev.TaskRequeued)]
    assert [e.charged for e in requeues] == [False] * KILLS
    assert [e.crashed for e in requeues] == [True] * KILLS
    assert task["detail"] == {"crashes": KILLS}
    completed = [e for e in journal if isinstance(e, ev.TaskCompleted)]
    assert [e.attempt for e in completed if e.task_id == task["id"]] == [1]
    # at least once, always under the same key: one request per kill plus the one that finished
    assert list(side.requests.values()) == [KILLS + 1]
    assert "Traceback" not in log.read_text()


async def _lease_left_by_a_killed_worker(
    fork: ForkServer, side: SideEffects, tmp_path: Path, **ghost: object
) -> tuple[dict[str, object], str]:
    """A worker ``ghost`` claims the only task, journals its lease and dies before running it."""
    config: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path}/c.db",
        "egress_allowed_hosts": ["127.0.0.1"],
        "max_requeues": 0,  # the first charged requeue fails the task
    }
    rt = await build(Settings(**config), run_worker=False)  # type: ignore[arg-type]
    await rt.engine.start()
    try:
        await rt.definitions.publish(_doc(side.url))
        iid = str(await rt.engine.submit(StartInstance("long-call", {})))
    finally:
        await rt.close()
    armed = config | ghost | {"worker_id": "ghost", "failpoints": "after-claim-before-execute:1"}
    child = await fork.spawn(armed, tmp_path / "children.log")
    assert await child.exit_code() == -signal.SIGKILL
    return config, iid


async def _finish(fork: ForkServer, config: dict[str, object], iid: str, log: Path) -> JSONObject:
    assert await (await fork.spawn(config, log)).exit_code() == 0
    store = SqlStore(create_engine(str(config["database_url"])))
    try:
        row = await store.get_instance(iid)
        requeued = [e for _, e in await store.journal(iid) if isinstance(e, ev.TaskRequeued)]
    finally:
        await store.close()
    assert row is not None
    return {"status": row.status, "error": row.error, "charged": [e.charged for e in requeued]}


async def test_a_lease_whose_holder_never_came_back_is_charged(
    fork: ForkServer, side: SideEffects, tmp_path: Path
) -> None:
    assert side.hold is not None
    side.hold.set()
    config, iid = await _lease_left_by_a_killed_worker(fork, side, tmp_path, lease_s=0.5)
    rescuer = config | {"worker_id": "rescuer", "sweep_interval_s": 0.05}
    assert await _finish(fork, rescuer, iid, tmp_path / "children.log") == {
        "status": "failed",
        "error": "node 'call' failed: lease expired 1 times: the worker running it was lost",
        "charged": [],  # with max_requeues=0 the first expiry fails the task, no requeue
    }


async def test_a_lease_released_by_its_restarted_holder_is_not_charged(
    fork: ForkServer, side: SideEffects, tmp_path: Path
) -> None:
    assert side.hold is not None
    side.hold.set()
    config, iid = await _lease_left_by_a_killed_worker(fork, side, tmp_path)
    restarted = config | {"worker_id": "ghost"}
    assert await _finish(fork, restarted, iid, tmp_path / "children.log") == {
        "status": "completed",
        "error": None,
        "charged": [False],
    }
