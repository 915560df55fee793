"""A poison task (one whose execution kills its worker process) under a stable worker identity
and a supervisor that restarts the worker: the restart re-queues it uncharged, but after
``task_max_crashes`` (default 3) deaths of the worker during one attempt the attempt fails
("the worker process died 3 times while running this task; it may crash its worker") and
goes through the node's retry policy. A clean stop counts nothing, and tasks that were not
held when the worker died are not charged. Real processes, real SIGKILLs (fork server)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from tests.crash.forkserver import ForkServer
from tests.net import post_server

from cadenza.bootstrap import build
from cadenza.domain import events as ev
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings

ARRIVAL_TIMEOUT_S = 60.0
DIED = "the worker process died 3 times while running this task; it may crash its worker"


def _doc(process_id: str, url: str, value: str, **node: JSON) -> JSONObject:
    call: JSONObject = {
        "id": "call",
        "type": "http",
        "timeout": "10m",
        "config": {"method": "POST", "url": url, "json": {"value": value}},
    }
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": process_id,
        "nodes": [call | node],
        "outputs": {"result": "{{ nodes.call.output.body.result }}"},
    }


@dataclass
class Peer:
    """Answers ``{"value": "ok"}`` at once; holds ``"poison"`` calls and says they arrived
    (the test then SIGKILLs the worker: the call is what kills its process)."""

    url: str = ""
    poison_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        value = str((await request.json())["value"])
        self.calls.append(value)
        if value == "poison":
            self.poison_arrived.set()
            await self.release.wait()
        return web.json_response({"result": value})


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = Peer()
    async with post_server(server.handle) as server.url:
        try:
            yield server
        finally:
            server.release.set()


async def _start(config: dict[str, object], docs: list[JSONObject]) -> list[str]:
    rt = await build(Settings(**config), run_worker=False)  # type: ignore[arg-type]
    await rt.engine.start()
    try:
        for doc in docs:
            await rt.definitions.publish(doc)
        return [str(await rt.engine.submit(StartInstance(str(d["id"]), {}))) for d in docs]
    finally:
        await rt.close()


async def _read(url: str, iid: str) -> tuple[str, str | None, list[ev.Event], JSONObject]:
    store = SqlStore(create_engine(url))
    try:
        row = await store.get_instance(iid)
        journal = [e for _, e in await store.journal(iid)]
        (task,) = [t for t in await store.task_rows(iid) if t["node_id"] == "call"]
    finally:
        await store.close()
    assert row is not None
    detail = task["detail"]
    assert isinstance(detail, dict)
    return row.status, row.error, journal, detail


async def test_a_task_that_kills_its_worker_at_every_restart_fails_through_its_retry_policy(
    fork: ForkServer, peer: Peer, tmp_path: Path
) -> None:
    """Every restarted worker is armed to die at the named point ``after-claim-before-execute``
    (the task reached the worker; its execution begins): the only task kills every
    incarnation. Two attempts of three deaths each, then the instance fails."""
    url = f"sqlite:///{tmp_path}/c.db"
    config: dict[str, object] = {
        "database_url": url,
        "worker_id": "supervised",
        "egress_allowed_hosts": ["127.0.0.1"],
        "sweep_interval_s": 0.05,
    }
    assert Settings(**config).task_max_crashes == 3  # type: ignore[arg-type]
    retry: JSON = {"max_attempts": 2, "backoff": "fixed", "initial": "10ms"}
    (iid,) = await _start(config, [_doc("poison", peer.url, "poison", retry=retry)])
    log = tmp_path / "children.log"
    armed = config | {"failpoints": "after-claim-before-execute:1"}
    kills = 0
    while (code := await (await fork.spawn(armed, log)).exit_code()) == -signal.SIGKILL:
        kills += 1
        assert kills <= 6, "the poison task was not stopped"
    assert code == 0  # the last restart found the task failed: nothing left to run
    assert kills == 6

    status, error, journal, detail = await _read(url, iid)
    assert (status, error) == ("failed", f"node 'call' failed: {DIED}")
    requeues = [e for e in journal if isinstance(e, ev.TaskRequeued)]
    assert [(e.charged, e.crashed) for e in requeues] == [(False, True)] * 4  # 2 per attempt
    (retried,) = [e for e in journal if isinstance(e, ev.TaskRetryScheduled)]
    assert (retried.attempt, retried.error) == (2, DIED)
    (failed,) = [e for e in journal if isinstance(e, ev.TaskFailed)]
    assert failed.error == DIED
    assert detail == {"crashes": 2}  # the second attempt's count (its third death failed it)
    assert peer.calls == []  # the executor never started: the point is before it
    assert log.read_text().count("failpoint after-claim-before-execute triggered") == 6


async def test_a_poison_task_charges_no_other_task_and_a_clean_stop_counts_nothing(
    fork: ForkServer, peer: Peer, tmp_path: Path
) -> None:
    """One poison task among bystanders, one task at a time (capacity 1): the worker dies each
    time the poison call is in flight. The bystanders complete, none charged; the poison task
    fails at the third death. Before that, a clean stop (SIGTERM, no grace) while the poison
    call is in flight releases it without counting."""
    url = f"sqlite:///{tmp_path}/c.db"
    config: dict[str, object] = {
        "database_url": url,
        "worker_id": "supervised",
        "egress_allowed_hosts": ["127.0.0.1"],
        "sweep_interval_s": 0.05,
        "capacity": 1,
    }
    docs = [_doc("poison", peer.url, "poison")]
    docs += [_doc(f"bystander-{i}", peer.url, "ok") for i in range(3)]
    poison, *bystanders = await _start(config, docs)
    log = tmp_path / "children.log"

    peer.poison_arrived.clear()
    child = await fork.spawn(config, log)
    await asyncio.wait_for(peer.poison_arrived.wait(), ARRIVAL_TIMEOUT_S)
    os.kill(child.pid, signal.SIGTERM)  # a clean stop: the lease is released, not counted
    assert await child.exit_code() == 0
    kills = 0
    while True:
        peer.poison_arrived.clear()
        child = await fork.spawn(config, log)
        arrived = asyncio.ensure_future(peer.poison_arrived.wait())
        exited = asyncio.ensure_future(child.exit_code())
        done, _ = await asyncio.wait(
            [arrived, exited], timeout=ARRIVAL_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        assert done, "neither the poison call nor the end of the run came"
        if exited in done:
            arrived.cancel()
            assert exited.result() == 0
            break
        os.kill(child.pid, signal.SIGKILL)  # the poison call kills its worker
        assert await exited == -signal.SIGKILL
        kills += 1
        assert kills <= 3, "the poison task was not stopped"
    assert kills == 3

    status, error, journal, detail = await _read(url, poison)
    assert (status, error) == ("failed", f"node 'call' failed: {DIED}")
    requeues = [(e.charged, e.crashed) for e in journal if isinstance(e, ev.TaskRequeued)]
    assert requeues == [(False, False), (False, True), (False, True)]  # the stop, two deaths
    assert detail == {"releases": 1, "crashes": 2}
    for iid in bystanders:
        status, error, journal, detail = await _read(url, iid)
        assert (status, error, detail) == ("completed", None, {})
        assert not [e for e in journal if isinstance(e, ev.TaskRequeued)]
    assert peer.calls.count("poison") == 4  # the stopped run and three deaths
    assert peer.calls.count("ok") == 3
    assert "Traceback" not in log.read_text()
