"""Zombie fencing: a worker that lost its lease reports late, and its result is dropped.

Two runtimes share one database in this process. Runtime A runs the first task with an
executor that blocks on an event; meanwhile A's background lease renewal and sweeping cannot
reach the database (a test double for a stalled process or a network partition), so its lease
expires. Runtime B expires the lease, re-runs the task with the normal executor and completes
the instance. When A is released, its late CompleteTask carries the old lease token and must be
refused by the fencing check: the journal keeps exactly one TaskCompleted, B's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.pg import BACKENDS, backend_url

from cadenza.application.engine import Engine
from cadenza.application.nodes.condition import ConditionExecutor
from cadenza.application.nodes.transform import TransformExecutor
from cadenza.application.ports import (
    IdGenerator,
    LeaseInfo,
    NodeCall,
    NodeExecutor,
    NodeResult,
    Timer,
)
from cadenza.bootstrap import Runtime, SystemClock, build, new_id
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
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


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # tests/integration/conftest.py shadows the root ``database_url`` with a SQLite-only one;
    # this test must hold on both backends.
    return backend_url(request, tmp_path)


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

    async def due_timers(self, now: float, limit: int) -> list[Timer]:
        self._check()
        return await super().due_timers(now, limit)


class StalledExecutor:
    """Blocks the ``first`` node until released, then reports ``{"by": "A"}``."""

    def __init__(self, inner: NodeExecutor) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls: list[NodeCall] = []

    async def execute(self, call: NodeCall) -> NodeResult:
        if call.node.id != "first":
            return await self.inner.execute(call)
        self.calls.append(call)
        self.entered.set()
        await self.release.wait()
        return NodeResult({"by": "A", "n": 0})


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
class Zombie:
    engine: ReportingEngine
    store: PartitionedStore
    executor: StalledExecutor


def _settings(url: str, owner: str) -> Settings:
    return Settings(database_url=url, worker_id=owner, lease_s=LEASE_S, sweep_interval_s=0.1)


@asynccontextmanager
async def runtime(url: str, owner: str) -> AsyncIterator[Runtime]:
    rt = await build(_settings(url, owner))
    try:
        yield rt
    finally:
        await rt.close()


@asynccontextmanager
async def zombie_runtime(url: str) -> AsyncIterator[Zombie]:
    """Runtime "A": the bootstrap's runtime with a stalling executor and a partitionable store."""
    async with runtime(url, "A") as rt:
        store = PartitionedStore(create_engine(url))
        templates = JinjaTemplates()
        stalled = StalledExecutor(TransformExecutor(templates))
        executors: dict[str, NodeExecutor] = {
            "transform": stalled,
            "condition": ConditionExecutor(templates),
        }
        engine = ReportingEngine(
            store, rt.definitions, templates, SystemClock(), new_id, executors, rt.engine.settings
        )
        try:
            yield Zombie(engine, store, stalled)
        finally:
            await engine.stop()
            await store.close()


async def test_late_result_of_a_zombie_is_dropped(database_url: str) -> None:
    async with zombie_runtime(database_url) as a, runtime(database_url, "B") as b:
        await a.engine.start()
        stored = await b.definitions.publish(DOC)
        iid = await a.engine.submit(cmd.StartInstance(stored.process_id, {}))
        assert isinstance(iid, str)
        await asyncio.wait_for(a.executor.entered.wait(), TIMEOUT_S)
        a.store.partitioned = True  # A stops renewing its lease (and sweeping)

        await b.engine.start()  # B expires A's lease, re-runs ``first`` and finishes
        inst = await asyncio.wait_for(b.engine.wait_finished(iid), TIMEOUT_S)
        assert inst.status.value == "completed", inst.error
        assert inst.outputs == {"first": {"by": "B", "n": 7}, "second": "after B"}

        a.store.partitioned = False
        a.executor.release.set()  # A wakes up and reports its stale result
        first_id = a.executor.calls[0].task_id
        assert await asyncio.wait_for(a.engine.report_of(first_id), TIMEOUT_S) == "stale"

        journal = [e for _, e in await b.store.journal(iid)]
        completed = [
            e for e in journal if isinstance(e, ev.TaskCompleted) and e.task_id == first_id
        ]
        assert len(completed) == 1
        assert completed[0].output == {"by": "B", "n": 7}
        leases = [e for e in journal if isinstance(e, ev.TaskLeased) and e.task_id == first_id]
        assert [e.leased_to for e in leases][-1] == "B"
        requeued = [e for e in journal if isinstance(e, ev.TaskRequeued)]
        assert [e.task_id for e in requeued] == [first_id]
        assert len(a.executor.calls) == 1  # A ran it once; B's re-run used its own executor
        row = await b.store.get_instance(iid)
        assert row is not None
        assert row.status == "completed"
        assert row.outputs == inst.outputs
        assert [s for s, _ in await b.store.journal(iid)] == list(range(1, len(journal) + 1))
