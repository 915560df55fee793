"""An engine on the in-memory store with a fake clock, driven by commands from the test.

Nothing runs by itself: the sweeper's background loops are idle (the test fires timers,
expires leases and claims through commands), and work nodes park in an executor that never
finishes, so the test reports every result itself with the lease the engine handed out.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine, EngineSettings
from cadenza.application.engine.sweeper import Sweeper
from cadenza.application.ports_nodes import NodeCall, NodeExecutor, NodeResult
from cadenza.domain import commands as cmd
from cadenza.domain.json import JSONObject
from cadenza.domain.timers import TimerKind
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates

HOLDER = "w1"
LEASE_S = 30.0
T0 = 1_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Parked:
    """A ``NodeExecutor`` whose runs never finish (the engine cancels them when it stops)."""

    def __init__(self) -> None:
        self.calls: list[NodeCall] = []
        self._called = asyncio.Event()

    async def execute(self, call: NodeCall) -> NodeResult:
        self.calls.append(call)
        self._called.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def keys(self, n: int) -> list[str]:
        """The idempotency keys of the first ``n`` calls, once ``n`` calls were made (the
        worker runs a dispatched task in its own asyncio task, so a call comes after the
        commit that dispatched it)."""
        while len(self.calls) < n:
            self._called.clear()
            await self._called.wait()
        return [c.idempotency_key for c in self.calls]


class IdleSweeper(Sweeper):
    """No background sweeps or renewals: ``sweep_once`` runs only when the test calls it."""

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def renew_leases(self) -> None:
        await asyncio.Event().wait()


@dataclass
class Rig:
    engine: Engine
    store: MemoryStore
    clock: FakeClock
    definitions: Definitions
    parked: Parked

    async def start(self, document: JSONObject, inputs: JSONObject | None = None) -> str:
        stored = await self.definitions.publish(document)
        iid = await self.engine.submit(cmd.StartInstance(stored.process_id, inputs or {}))
        assert isinstance(iid, str)
        return iid

    async def submit(self, command: cmd.Command) -> object:
        return await self.engine.submit(command)

    async def journal(self, iid: str) -> list[str]:
        """The journal as "EventType node" lines (the node of task events), in seq order."""
        nodes: dict[str, str] = {}
        out: list[str] = []
        for _, e in await self.store.journal(iid):
            data = e.data()
            task_id, node_id = data.get("task_id"), data.get("node_id")
            if isinstance(task_id, str) and isinstance(node_id, str):
                nodes[task_id] = node_id
            node = nodes.get(task_id) if isinstance(task_id, str) else None
            out.append(e.type_name if node is None else f"{e.type_name} {node}")
        return out

    async def tasks(self, iid: str) -> dict[str, JSONObject]:
        """The task rows by node id (the newest row of a node that ran more than once)."""
        return {str(r["node_id"]): r for r in await self.store.task_rows(iid)}

    async def status(self, iid: str) -> str:
        row = await self.store.get_instance(iid)
        assert row is not None
        return row.status

    async def lease(self, iid: str, node_id: str) -> tuple[str, int, str]:
        """The (task id, attempt, lease token) the engine leased ``node_id`` under."""
        row = (await self.tasks(iid))[node_id]
        assert row["leased_to"] == HOLDER, row
        return str(row["id"]), cast(int, row["attempt"]), str(row["lease_token"])

    async def complete(self, iid: str, node_id: str, output: JSONObject) -> object:
        task_id, attempt, token = await self.lease(iid, node_id)
        return await self.submit(cmd.CompleteTask(iid, task_id, attempt, token, output))

    async def fail(self, iid: str, node_id: str, error: str, retryable: bool = True) -> object:
        task_id, attempt, token = await self.lease(iid, node_id)
        return await self.submit(cmd.FailTask(iid, task_id, attempt, token, error, retryable))

    async def fire_due(self) -> list[str]:
        """Fire every timer due at the clock's time, one command each; their kinds."""
        timers = await self.store.claim_timers(HOLDER, self.clock.now(), 100, LEASE_S)
        for t in timers:
            await self.submit(cmd.FireTimer(t.instance_id, t.id, t.task_id, TimerKind(t.kind)))
        return [t.kind for t in timers]


def http(node_id: str, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": "http", "config": {"url": f"http://peer/{node_id}"}, **extra}


def doc(
    nodes: Sequence[Mapping[str, object]],
    edges: Sequence[Mapping[str, object]] = (),
    **extra: object,
) -> JSONObject:
    out: dict[str, object] = {"schema": "cadenza/v1", "id": "p", "name": "t"}
    out.update(nodes=[dict(n) for n in nodes], edges=[dict(e) for e in edges], **extra)
    return cast("JSONObject", out)


@asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    store = MemoryStore()
    clock = FakeClock()
    templates = JinjaTemplates()
    definitions = Definitions(store, templates, JsonSchemaChecks(), clock)
    counter = itertools.count(1)

    def new_id() -> str:
        return f"id{next(counter):04d}"

    parked = Parked()
    executors: dict[str, NodeExecutor] = {"http": parked}
    engine = Engine(
        store,
        definitions,
        templates,
        clock,
        new_id,
        executors,
        EngineSettings(owner=HOLDER, lease_s=LEASE_S, sweep_interval_s=3600.0),
    )
    engine.sweeper = IdleSweeper(
        engine.submit_all,
        engine.capacity,
        engine.availability,
        engine.settings,
        store,
        clock,
        new_id,
    )
    await engine.start()
    try:
        yield Rig(engine, store, clock, definitions, parked)
    finally:
        await engine.stop()
        templates.close()
