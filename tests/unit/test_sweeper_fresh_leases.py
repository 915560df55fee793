"""Issue 11 scope 6: right after ``Engine.start()`` the sweeper's first pass releases the
leases of this worker's previous incarnations, never the ones this incarnation took moments
earlier (the old ``store.renew(owner, 0.0)`` voided them, and the tasks ran twice)."""

from __future__ import annotations

import asyncio
import itertools

from tests.unit.engine_memory import LEASE_S, FakeClock, Parked, doc, http

from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine, EngineSettings
from cadenza.application.ports_nodes import NodeExecutor
from cadenza.domain import commands as cmd
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates


class GatedStore(MemoryStore):
    """Holds the sweeper's first release until the test opens the gate, and tells when the
    first sweep reached its claim (by then its expired leases were committed as requeues)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.claiming = asyncio.Event()

    async def release_previous(self, owner: str, holder: str) -> int:
        await self.gate.wait()
        return await super().release_previous(owner, holder)

    async def claim(self, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        self.claiming.set()
        return await super().claim(*args, **kwargs)  # type: ignore[arg-type]


async def call_task(store: MemoryStore, iid: str) -> JSONObject:
    [task] = [t for t in await store.task_rows(iid) if t["node_id"] == "call"]
    return task


async def test_the_first_sweep_keeps_the_leases_this_incarnation_just_took() -> None:
    store, clock, templates = GatedStore(), FakeClock(), JinjaTemplates()
    definitions = Definitions(store, templates, JsonSchemaChecks(), clock)
    counter = itertools.count(1)
    parked = Parked()
    executors: dict[str, NodeExecutor] = {"http": parked}
    settings = EngineSettings(
        owner="w", incarnation="new", lease_s=LEASE_S, sweep_interval_s=3600.0
    )
    engine = Engine(
        store, definitions, templates, clock, lambda: f"id{next(counter):04d}", executors, settings
    )
    await engine.start()  # the sweeper's first pass waits at the gate
    try:
        stored = await definitions.publish(doc([http("call")]))
        iid = await engine.submit(cmd.StartInstance(stored.process_id, {}))
        assert isinstance(iid, str)
        await parked.keys(1)  # leased at once by the commit loop, and running
        before = await call_task(store, iid)
        store.gate.set()
        await asyncio.wait_for(store.claiming.wait(), 10)
        task = await call_task(store, iid)
        assert task["leased_to"] == "w/new"
        assert task["lease_token"] == before["lease_token"]
        assert task["lease_expires_at"] == clock.now() + LEASE_S
        journal = [e.type_name for _, e in await store.journal(iid)]
        assert journal == ["InstanceStarted", "TaskScheduled", "TaskCompleted", "TaskScheduled"]
        assert len(parked.calls) == 1
    finally:
        await engine.stop()
        templates.close()
