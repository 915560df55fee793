"""Zombie fencing: a worker that lost its lease reports late, and its result is dropped.

Two runtimes share one database in this process; only A runs at first. A runs the first task
with an executor that blocks on an event; meanwhile A's background lease renewal and sweeping
cannot reach the database (a test double for a stalled process or a network partition), so its
lease expires. Runtime B (started later) expires the lease and re-runs the task with the normal
transform executor. When A is released, its late CompleteTask carries the old lease token and
must be dropped: the journal keeps exactly one TaskCompleted, B's.

Two moments for A's late report: after B finished the instance, and while B still runs the
task (B's executor waits at a gate). Only in the second is the task still active, so there the
lease token (fencing) is the one check that keeps A's result out of the journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadenza.application.engine import Engine
from cadenza.application.nodes.condition import ConditionExecutor
from cadenza.application.nodes.transform import TransformExecutor
from cadenza.application.ports import IdGenerator, LeaseInfo, Timer
from cadenza.application.ports_nodes import NodeCall, NodeExecutor, NodeResult
from cadenza.bootstrap import Runtime, SystemClock, build, new_id
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.commands import Outcome
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates
from cadenza.settings import Settings

LEASE_S = 0.5
TIMEOUT_S = 20.0

DOC: JSONObject = {
    "schema": "cadenza/v1",
    "id": "fenced",
    "name": "Fencing",
    "outputs": {"first": "{{ nodes.first.output }}", "second": "{{ nodes.second.output }}"},
    "nodes": [
        {"id": "first", "type": "transform", "config": {"output": {"by": "B", "n": 7}}},
        {
            "id": "second",
            "type": "transform",
            "config": {"output": "after {{ nodes.first.output.by }}"},
        },
    ],
    "edges": [{"from": "first", "to": "second"}],
}


class PartitionedStore(SqlStore):
    """While ``partitioned``, lease renewal and sweeping fail as if the database were away."""

    partitioned = False

    def _check(self) -> None:
        if self.partitioned:
            raise ConnectionError("database unreachable (test partition)")

    async def renew(self, owner: str, until: float) -> int:
        self._check()
        return await super().renew(owner, until)

    async def claim(
        self, owner: str, limit: int, now: float, lease_s: float, new_token: IdGenerator
    ) -> list[LeaseInfo]:
        self._check()
        return await super().claim(owner, limit, now, lease_s, new_token)

    async def expired_leases(self, now: float, limit: int) -> list[LeaseInfo]:
        self._check()
        return await super().expired_leases(now, limit)

    async def claim_timers(
        self, holder: str, now: float, limit: int, claim_s: float
    ) -> list[Timer]:
        self._check()
        return await super().claim_timers(holder, now, limit, claim_s)


class GatedExecutor:
    """Holds the ``first`` node at a gate until released.

    Then it returns ``result`` if given (the zombie's own answer), else what the normal
    transform executor computes.
    """

    def __init__(self, inner: NodeExecutor, result: NodeResult | None = None) -> None:
        self.inner = inner
        self.result = result
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls: list[NodeCall] = []

    async def execute(self, call: NodeCall) -> NodeResult:
        if call.node.id != "first":
            return await self.inner.execute(call)
        self.calls.append(call)
        self.entered.set()
        await self.release.wait()
        return self.result if self.result is not None else await self.inner.execute(call)


class ReportingEngine(Engine):
    """Submits what its worker reports and keeps each outcome ("ok", "stale", ...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reports: list[tuple[cmd.Command, asyncio.Future[object]]] = []
        super().__init__(*args, **kwargs)

    def post(self, command: cmd.Command) -> None:
        self.reports.append((command, asyncio.ensure_future(self.submit(command))))

    async def report_of(self, task_id: str) -> object:
        """The outcome of the first CompleteTask this worker reported for ``task_id``."""
        while True:
            for c, outcome in self.reports:
                if isinstance(c, cmd.CompleteTask) and c.task_id == task_id:
                    return await outcome
            await asyncio.sleep(0.01)


@dataclass
class Runner:
    """One runtime: the bootstrap's pieces with a gated executor and a partitionable store."""

    rt: Runtime
    engine: ReportingEngine
    store: PartitionedStore
    gate: GatedExecutor


@asynccontextmanager
async def runtime(url: str, owner: str, result: NodeResult | None = None) -> AsyncIterator[Runner]:
    rt = await build(
        Settings(
            database_url=url,
            worker_id=owner,
            lease_s=LEASE_S,
            sweep_interval_s=0.1,
            engine_inline_pure=False,  # the transforms are the workers' tasks here
        )
    )
    store = PartitionedStore(create_engine(url))
    templates = JinjaTemplates()
    gate = GatedExecutor(TransformExecutor(templates), result)
    executors: dict[str, NodeExecutor] = {
        "transform": gate,
        "condition": ConditionExecutor(templates),
    }
    engine = ReportingEngine(
        store, rt.definitions, templates, SystemClock(), new_id, executors, rt.engine.settings
    )
    try:
        yield Runner(rt, engine, store, gate)
    finally:
        await engine.stop()
        await store.close()
        await rt.close()


ZOMBIE_RESULT = NodeResult({"by": "A", "n": 0})
B_OUTPUTS = {"first": {"by": "B", "n": 7}, "second": "after B"}


async def _zombie_loses_its_lease(a: Runner, b: Runner) -> tuple[str, str]:
    """A runs ``first`` and stalls past its lease; B takes the task over.

    Returns (instance id, task id of ``first``).
    """
    await a.engine.start()
    stored = await a.rt.definitions.publish(DOC)
    iid = await a.engine.submit(cmd.StartInstance(stored.process_id, {}))
    assert isinstance(iid, str)
    await asyncio.wait_for(a.gate.entered.wait(), TIMEOUT_S)
    a.store.partitioned = True  # A stops renewing its lease (and sweeping)
    await b.engine.start()  # B expires A's lease and re-runs ``first``
    await asyncio.wait_for(b.gate.entered.wait(), TIMEOUT_S)
    return iid, a.gate.calls[0].task_id


async def _check_journal(store: SqlStore, iid: str, task_id: str, holder: str) -> None:
    journal = await store.journal(iid)
    events = [e for _, e in journal]
    assert [s for s, _ in journal] == list(range(1, len(journal) + 1))
    completed = [e for e in events if isinstance(e, ev.TaskCompleted) and e.task_id == task_id]
    assert [e.output for e in completed] == [{"by": "B", "n": 7}]
    leases = [e.leased_to for e in events if isinstance(e, ev.TaskLeased) and e.task_id == task_id]
    assert leases[-1] == holder  # B's worker id and this run of it
    requeued = [e.task_id for e in events if isinstance(e, ev.TaskRequeued)]
    assert requeued == [task_id]
    row = await store.get_instance(iid)
    assert row is not None
    assert (row.status, row.outputs) == ("completed", B_OUTPUTS)


async def test_zombie_reporting_after_the_takeover_finished_is_dropped(database_url: str) -> None:
    async with (
        runtime(database_url, "A", ZOMBIE_RESULT) as a,
        runtime(database_url, "B") as b,
    ):
        b.gate.release.set()  # B runs ``first`` with the normal executor at once
        iid, first = await _zombie_loses_its_lease(a, b)
        inst = await asyncio.wait_for(b.engine.wait_finished(iid), TIMEOUT_S)
        assert inst.status.value == "completed", inst.error
        assert inst.outputs == B_OUTPUTS

        a.store.partitioned = False
        a.gate.release.set()  # A wakes up and reports its result late
        assert await asyncio.wait_for(a.engine.report_of(first), TIMEOUT_S) == Outcome.STALE
        assert await asyncio.wait_for(b.engine.report_of(first), TIMEOUT_S) == Outcome.OK
        assert len(a.gate.calls) == len(b.gate.calls) == 1
        await _check_journal(b.store, iid, first, b.engine.settings.holder)


async def test_zombie_reporting_while_the_new_holder_runs_is_fenced(database_url: str) -> None:
    """The task is still active (leased to B) when A reports: only the lease token refuses A."""
    async with (
        runtime(database_url, "A", ZOMBIE_RESULT) as a,
        runtime(database_url, "B") as b,
    ):
        iid, first = await _zombie_loses_its_lease(a, b)  # B now holds ``first`` at its gate
        a.store.partitioned = False
        a.gate.release.set()
        assert await asyncio.wait_for(a.engine.report_of(first), TIMEOUT_S) == Outcome.STALE
        events = [e for _, e in await b.store.journal(iid)]
        assert not any(isinstance(e, ev.TaskCompleted) and e.task_id == first for e in events)

        b.gate.release.set()
        assert await asyncio.wait_for(b.engine.report_of(first), TIMEOUT_S) == Outcome.OK
        inst = await asyncio.wait_for(b.engine.wait_finished(iid), TIMEOUT_S)
        assert inst.status.value == "completed", inst.error
        assert inst.outputs == B_OUTPUTS
        assert len(a.gate.calls) == len(b.gate.calls) == 1
        await _check_journal(b.store, iid, first, b.engine.settings.holder)


async def test_task_returning_to_the_same_worker_replaces_its_stale_run(tmp_path: Path) -> None:
    """A worker that missed one renewal gets its own task back: the stale run is cancelled and
    the new one stays tracked (renewed, cancellable), so the task does not run a third time."""
    async with runtime(f"sqlite:///{tmp_path}/c.db", "A") as a:
        gates: list[asyncio.Event] = []
        inner = a.gate.inner

        async def execute(call: NodeCall) -> NodeResult:
            if call.node.id != "first":
                return await inner.execute(call)
            gate = asyncio.Event()
            gates.append(gate)
            await gate.wait()
            return NodeResult({"by": f"execution {len(gates)}"})

        a.gate.execute = execute  # type: ignore[method-assign]
        original_renew = a.store.renew
        blocked = False

        async def renew(owner: str, until: float) -> int:
            if blocked:
                raise ConnectionError("renewal unreachable")
            return await original_renew(owner, until)

        a.store.renew = renew  # type: ignore[method-assign]
        await a.engine.start()
        stored = await a.rt.definitions.publish(DOC)
        iid = await a.engine.submit(cmd.StartInstance(stored.process_id, {}))
        assert isinstance(iid, str)
        await _until(lambda: len(gates) >= 1)
        blocked = True  # one missed renewal window: the lease expires, the task comes back
        await _until(lambda: len(gates) >= 2)
        blocked = False
        gates[0].set()  # the stale run ends (if it still runs, its report is fenced)
        await asyncio.sleep(0.1)
        assert len(a.engine.worker.running) == 1  # the new run is still tracked
        await asyncio.sleep(1.5)  # three lease periods with healthy renewals
        assert len(gates) == 2
        for gate in gates:
            gate.set()
        inst = await asyncio.wait_for(a.engine.wait_finished(iid), 10)
    assert inst.status.value == "completed"


async def _until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)
