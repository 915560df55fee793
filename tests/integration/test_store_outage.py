"""The engine's own work survives a store outage: kept, retried, committed once, slots exact.

A store double (a real SQLite store) fails the transaction that records a claim of the sweeper
with ``StoreUnavailable``, as a database going away between the claim and its record would.
The claim must be kept and recorded when the store answers again, and the worker's capacity
must count exactly the tasks it runs (a rollback used to free the claim's slots although the
retried claim then ran its tasks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cadenza.application.engine import Engine
from cadenza.application.nodes.transform import TransformExecutor
from cadenza.application.ports import (
    Changes,
    IdGenerator,
    LeaseInfo,
    StoreUnavailable,
    Timer,
    Transaction,
)
from cadenza.application.ports_nodes import NodeCall, NodeExecutor, NodeResult
from cadenza.bootstrap import SystemClock, build, new_id
from cadenza.domain import commands as cmd
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates
from cadenza.settings import Settings

TIMEOUT_S = 20.0
CAPACITY = 2
DOC: JSONObject = {
    "schema": "cadenza/v1",
    "id": "held",
    "name": "Held",
    "inputs": {"type": "object", "properties": {"i": {"type": "integer"}}},
    "nodes": [{"id": "hold", "type": "transform", "config": {"output": "{{ inputs.i }}"}}],
    "outputs": {"i": "{{ nodes.hold.output }}"},
}


class ClaimOutageStore(SqlStore):
    """While ``outages`` is set, the tasks the sweeper claims are ``targets``; the next
    ``outages`` transactions that write one of them fail as if the database were away."""

    outages = 0
    targets: set[str]
    swept: asyncio.Event  # the sweeper's first sweep began: it voided its old leases before

    async def claim_timers(
        self, holder: str, now: float, limit: int, claim_s: float
    ) -> list[Timer]:
        self.swept.set()
        return await super().claim_timers(holder, now, limit, claim_s)

    async def claim(
        self, owner: str, limit: int, now: float, lease_s: float, new_token: IdGenerator
    ) -> list[LeaseInfo]:
        leases = await super().claim(owner, limit, now, lease_s, new_token)
        if self.outages:
            self.targets.update(x.task_id for x in leases)
        return leases

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with super().transaction() as tx:
            save = tx.save

            async def failing_save(changes: Changes) -> None:
                # at the end of the batch, as a commit meeting a full disk or a lost server
                touched = {task.id for _, task in changes.updated_tasks}
                if self.outages and self.targets & touched:
                    self.outages -= 1
                    raise StoreUnavailable("test outage while a claim is recorded")
                await save(changes)

            tx.save = failing_save  # type: ignore[method-assign]
            yield tx


class Holding:
    """Holds every task at the gate of its input ``i``; ``entered`` lists who arrived."""

    def __init__(self, inner: NodeExecutor) -> None:
        self.inner = inner
        self.gates: dict[int, asyncio.Event] = {}
        self.entered: list[int] = []
        self.arrived = asyncio.Condition()

    async def execute(self, call: NodeCall) -> NodeResult:
        i = call.context["inputs"]["i"]  # type: ignore[index]
        assert isinstance(i, int)
        gate = self.gates.setdefault(i, asyncio.Event())
        async with self.arrived:
            self.entered.append(i)
            self.arrived.notify_all()
        await gate.wait()
        return await self.inner.execute(call)

    def release(self, i: int) -> None:
        self.gates.setdefault(i, asyncio.Event()).set()

    async def until_arrived(self, n: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.entered) >= n)


@asynccontextmanager
async def held_engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, ClaimOutageStore, Holding]]:
    url = f"sqlite:///{tmp_path}/outage.db"
    settings = Settings(
        database_url=url,
        capacity=CAPACITY,
        sweep_interval_s=0.05,
        engine_inline_pure=False,  # the transforms take worker slots here
    )
    rt = await build(settings)
    store = ClaimOutageStore(create_engine(url))
    store.targets = set()
    store.swept = asyncio.Event()
    templates = JinjaTemplates()
    holding = Holding(TransformExecutor(templates))
    executors: dict[str, NodeExecutor] = {"transform": holding}
    engine = Engine(
        store, rt.definitions, templates, SystemClock(), new_id, executors, rt.engine.settings
    )
    await engine.start()
    try:
        yield engine, store, holding
    finally:
        for i in range(10):
            holding.release(i)
        await engine.stop()
        await store.close()
        await rt.close()


async def test_a_claim_recorded_after_an_outage_runs_once_and_keeps_capacity_exact(
    tmp_path: Path,
) -> None:
    async with held_engine(tmp_path) as (engine, store, holding):
        failures: list[bool] = []
        engine.availability.subscribe(lambda s: failures.append(s.available))
        stored = await engine.definitions.publish(DOC)
        # a starting sweeper voids the leases of this worker's previous run: leases taken
        # before that would be voided too (and their tasks re-run), so start after it
        await asyncio.wait_for(store.swept.wait(), TIMEOUT_S)
        ids = []
        for i in range(4):  # two run, two wait in the queue: the capacity is two
            iid = await engine.submit(cmd.StartInstance(stored.process_id, {"i": i}))
            assert isinstance(iid, str)
            ids.append(iid)
        await asyncio.wait_for(holding.until_arrived(CAPACITY), TIMEOUT_S)
        assert engine.capacity.used == CAPACITY
        store.outages = 1
        holding.release(holding.entered[0])  # a slot frees: the sweeper claims a queued task
        await asyncio.wait_for(holding.until_arrived(CAPACITY + 1), TIMEOUT_S)
        assert failures == [False, True]  # the claim met the outage, then was recorded
        assert len(store.targets) == 1
        assert len(set(holding.entered)) == len(holding.entered)  # each task entered once
        assert engine.capacity.used == len(engine.worker.running) == CAPACITY
        for i in range(4):
            holding.release(i)
        done = [await asyncio.wait_for(engine.wait_finished(iid), TIMEOUT_S) for iid in ids]
        assert [d.outputs for d in done] == [{"i": i} for i in range(4)]
        assert engine.capacity.used == 0
        claimed = store.targets.pop()
        journal = [e for iid in ids for _, e in await store.journal(iid)]
        leases = [e for e in journal if getattr(e, "task_id", None) == claimed]
        assert [type(e).__name__ for e in leases].count("TaskCompleted") == 1
