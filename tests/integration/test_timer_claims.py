"""Two engines on one database fire each due timer once: timers are claimed, not just read.

First, on the databases with row locks: a claim skips the timers another transaction holds
(``FOR UPDATE SKIP LOCKED``) instead of waiting for them. Then the engines.

Each engine (a worker's, in this process) has its own store connection and its own sweeper,
driven by the test (``IdleSweeper``: no background sweeps) with one fake clock. Every sweeper
submits through ``Firings``, which counts the ``FireTimer`` commands it hands to its engine
and can hold them at a gate: a sweeper that claimed timers and has not fired them yet (or
never will: it died). One instance fans out to five waits of 1 s, then a join.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.pg import BACKENDS, STORES, backend_url
from tests.unit.engine_memory import FakeClock, IdleSweeper

from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine, EngineSettings
from cadenza.application.ports import Changes, Store, Timer
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import timers as timers_table
from cadenza.infrastructure.templating import JinjaTemplates

LEASE_S = 30.0  # also how long a sweeper's timer claim keeps the others away
T0 = 1_000.0
WAITS = 5
DUE = T0 + 2.0  # the waits' timers (1 s) are due

_WAITS: list[JSON] = [
    {"id": f"w{i}", "type": "wait", "config": {"duration": "1s"}} for i in range(WAITS)
]
_EDGES: list[JSON] = [{"from": "fan", "to": f"w{i}"} for i in range(WAITS)]
_EDGES += [{"from": f"w{i}", "to": "join"} for i in range(WAITS)]
DOC: JSONObject = {
    "schema": "cadenza/v1",
    "id": "waits",
    "name": "Five waits, then a join",
    "nodes": [
        {"id": "fan", "type": "transform", "config": {"output": 1}},
        *_WAITS,
        {"id": "join", "type": "transform", "config": {"output": {"done": True}}},
    ],
    "edges": _EDGES,
    "outputs": {"done": "{{ nodes.join.output.done }}"},
}

ROW_LOCKS = [p for p in BACKENDS if p != "sqlite"]


@pytest.mark.parametrize("backend", ROW_LOCKS)
async def test_a_timer_claim_skips_timers_another_transaction_holds(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(
        "pg_database_url" if backend == "postgres" else "mariadb_database_url"
    )
    await asyncio.to_thread(upgrade, url)
    store = SqlStore(create_engine(url))
    try:
        due = [Timer("t1", "i1", None, "wait", 1.0), Timer("t2", "i1", None, "wait", 2.0)]
        async with store.transaction() as tx:
            await tx.save(Changes(new_timers=due))
        async with store.engine.connect() as other:  # a claim (or a firing) in flight elsewhere
            held = sa.select(timers_table.c.id).where(timers_table.c.id == "t1").with_for_update()
            assert (await other.execute(held)).scalar_one() == "t1"
            assert await store.claim_timers("w", 5.0, 10, 30.0) == [due[1]]
            await other.rollback()
        assert await store.claim_timers("w", 5.0, 10, 30.0) == [due[0]]
    finally:
        await store.close()


Submit = Callable[[Sequence[cmd.Command]], Awaitable[object]]


class Firings:
    """A sweeper's submit: counts the timers it fires; with ``hold``, waits at ``gate``."""

    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        self.fired: list[str] = []  # timer ids, one entry per FireTimer passed on
        self.hold = False
        self.held = asyncio.Event()
        self.gate = asyncio.Event()
        self.fail_next = False

    async def __call__(self, commands: Sequence[cmd.Command]) -> object:
        timers = [c.timer_id for c in commands if isinstance(c, cmd.FireTimer)]
        if timers and self.hold:
            self.held.set()
            await self.gate.wait()
        if timers and self.fail_next:
            self.fail_next = False
            raise RuntimeError("test: the firing did not commit")
        self.fired.extend(timers)
        return await self._submit(commands)


@dataclass
class Node:
    engine: Engine
    firings: Firings
    definitions: Definitions

    async def sweep(self) -> None:
        await self.engine.sweeper.sweep_once()


@asynccontextmanager
async def cluster(url: str) -> AsyncIterator[tuple[Node, Node, FakeClock]]:
    """Engines A and B on the database at ``url`` (one shared store for ``memory://``)."""
    clock = FakeClock(T0)
    ids = itertools.count(1)

    def new_id() -> str:
        return f"id{next(ids):06d}"

    shared = MemoryStore() if url == "memory://" else None
    if shared is None:
        await asyncio.to_thread(upgrade, url)
    async with AsyncExitStack() as stack:
        nodes = []
        for owner in ("A", "B"):
            store: Store
            if shared is not None:
                store = shared
            else:
                sql = SqlStore(create_engine(url))
                stack.push_async_callback(sql.close)
                store = sql
            templates = JinjaTemplates()
            stack.callback(templates.close)
            definitions = Definitions(store, templates, JsonSchemaChecks(), clock)
            settings = EngineSettings(owner=owner, lease_s=LEASE_S, sweep_interval_s=3600.0)
            engine = Engine(store, definitions, templates, clock, new_id, {}, settings)
            firings = Firings(engine.submit_all)
            engine.sweeper = IdleSweeper(
                firings, engine.capacity, engine.availability, settings, store, clock, new_id
            )
            await engine.start()
            stack.push_async_callback(engine.stop)
            nodes.append(Node(engine, firings, definitions))
        yield nodes[0], nodes[1], clock


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def _start(node: Node) -> str:
    stored = await node.definitions.publish(DOC)
    iid = await node.engine.submit(cmd.StartInstance(stored.process_id, {}))
    assert isinstance(iid, str)
    return iid


async def _timer_ids(node: Node, iid: str) -> list[str]:
    async with node.engine.store.transaction() as tx:
        return sorted(t.id for t in await tx.timers_for(iid))


async def _check_completed_once(node: Node, iid: str) -> None:
    """The instance completed; each wait completed exactly once, and no timer is left."""
    row = await node.engine.store.get_instance(iid)
    assert row is not None
    assert (row.status, row.outputs) == ("completed", {"done": True})
    journal = [e for _, e in await node.engine.store.journal(iid)]
    nodes = {
        e.task_id: e.node_id
        for e in journal
        if isinstance(e, ev.TaskScheduled | ev.TaskWaiting)  # a wait starts waiting
    }
    completed = [nodes[e.task_id] for e in journal if isinstance(e, ev.TaskCompleted)]
    waits = [f"w{i}" for i in range(WAITS)]
    assert sorted(completed) == sorted(["start", "fan", *waits, "join", "end"])
    assert await _timer_ids(node, iid) == []


async def test_of_two_engines_sweeping_together_one_fires_each_due_timer(url: str) -> None:
    async with cluster(url) as (a, b, clock):
        iid = await _start(a)
        timers = await _timer_ids(a, iid)
        assert len(timers) == WAITS
        clock.t = DUE
        a.firings.hold = True  # A claims the due timers and stops before firing them
        sweep_a = asyncio.create_task(a.sweep())
        await a.firings.held.wait()
        await b.sweep()  # meanwhile B sweeps: the timers are A's
        a.firings.gate.set()
        await sweep_a
        assert (sorted(a.firings.fired), b.firings.fired) == (timers, [])
        await b.sweep()  # and after: nothing left to fire
        assert b.firings.fired == []
        await _check_completed_once(b, iid)


async def test_timers_a_dead_sweeper_claimed_fire_once_its_claim_ends(url: str) -> None:
    async with cluster(url) as (a, b, clock):
        iid = await _start(a)
        timers = await _timer_ids(a, iid)
        clock.t = DUE
        a.firings.hold = True
        sweep_a = asyncio.create_task(a.sweep())
        await a.firings.held.wait()
        sweep_a.cancel()  # A dies between its claim and the firing
        with pytest.raises(asyncio.CancelledError):
            await sweep_a
        await b.sweep()
        clock.t = DUE + LEASE_S - 0.5
        await b.sweep()  # A's claim still holds
        assert b.firings.fired == []
        clock.t = DUE + LEASE_S  # it ended
        await b.sweep()
        assert (a.firings.fired, sorted(b.firings.fired)) == ([], timers)
        await _check_completed_once(b, iid)


async def test_a_sweeper_fires_its_claimed_timers_again_when_their_firing_failed(
    url: str,
) -> None:
    async with cluster(url) as (a, b, clock):
        iid = await _start(a)
        timers = await _timer_ids(a, iid)
        clock.t = DUE
        a.firings.fail_next = True
        with pytest.raises(RuntimeError, match="did not commit"):
            await a.sweep()
        await b.sweep()  # the claim is still A's
        await a.sweep()  # A's next sweep fires them, without waiting for the claim to end
        assert (sorted(a.firings.fired), b.firings.fired) == (timers, [])
        await _check_completed_once(a, iid)
