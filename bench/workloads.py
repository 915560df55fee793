"""Benchmark workloads (DESIGN §10), run in-process against a durable store.

W1 overhead:    ``instances`` instances x ``nodes`` sequential no-op ``transform`` nodes, all
                started at once (the concurrent shape).
W1 sequential:  the same instances run one after another (``w1seq``): each is started only
                when the previous one's terminal event has committed, so one instance is in
                flight at a time: the latency of a single workflow's chain of steps.
W2 concurrency: one instance, a ``transform`` fanning out to ``n`` parallel ``wait`` nodes of
                100 ms each, joined by one ``transform`` (join all).

The clock starts at the first ``StartInstance`` submit and stops when every instance has
finished; database creation, migrations and publishing are outside the measured window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import resource
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from cadenza.application.ports import StoredDefinition
from cadenza.bootstrap import Runtime, build
from cadenza.domain.commands import StartInstance
from cadenza.domain.events import Event, InstanceCancelled, InstanceCompleted, InstanceFailed
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.tables import instances, tasks
from cadenza.settings import Settings

W2_WAIT = "100ms"
CHUNK = 500  # ids per IN (...) list when counting task rows

# wraps the measured window only (the profiler of ``bench.run --profile``)
Window = Callable[[], AbstractContextManager[object]]
TERMINAL = (InstanceCompleted, InstanceFailed, InstanceCancelled)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@dataclass
class Result:
    """What one workload run measured; ``tasks`` counts only the nodes of the document."""

    workload: str
    params: dict[str, int]
    wall_s: float
    cpu_s: float  # CPU time of the whole process (all threads) in the window
    rss_at_start_mb: float  # peak RSS when the clock started (after migrations and publish)
    tasks: int
    task_rows: int
    instances: int
    completed: int
    task_status: dict[str, int] = field(default_factory=dict)
    # start-to-terminal time of each instance, seconds (submit until its terminal event)
    latencies_s: list[float] = field(default_factory=list)

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.wall_s if self.wall_s > 0 else 0.0


def w1_document(nodes: int) -> JSONObject:
    """``nodes`` no-op transforms chained n1 -> n2 -> ... (implicit start and end)."""
    ids = [f"n{i}" for i in range(1, nodes + 1)]
    return {
        "schema": "cadenza/v1",
        "id": f"bench-w1-{nodes}",
        "name": f"W1: {nodes} sequential no-op nodes",
        "nodes": [{"id": i, "type": "transform", "config": {"output": {"i": 1}}} for i in ids],
        "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


def w2_document(n: int) -> JSONObject:
    """``fan`` -> ``n`` parallel 100 ms waits -> ``join`` (join all, the default)."""
    waits = [f"w{i}" for i in range(n)]
    nodes: list[JSONObject] = [{"id": "fan", "type": "transform", "config": {"output": {"n": n}}}]
    nodes += [{"id": w, "type": "wait", "config": {"duration": W2_WAIT}} for w in waits]
    nodes.append({"id": "join", "type": "transform", "config": {"output": {"done": True}}})
    edges = [{"from": "fan", "to": w} for w in waits] + [{"from": w, "to": "join"} for w in waits]
    return {
        "schema": "cadenza/v1",
        "id": f"bench-w2-{n}",
        "name": f"W2: fan-out of {n} waits of {W2_WAIT}, then a join",
        "nodes": nodes,  # type: ignore[dict-item]
        "edges": edges,  # type: ignore[dict-item]
    }


async def _runtime(database_url: str) -> Runtime:
    # the sweeper wakes at every known timer deadline; the interval only bounds idle sleeps
    # W2 at N=10,000 is a document of 10,002 nodes: above the default cap of 1,000 a tenant may
    # publish (max_definition_nodes), which an operator raises for such processes
    settings = Settings(database_url=database_url, worker_id="bench", max_definition_nodes=20_000)
    return await build(settings)


async def _counts(rt: Runtime, column: sa.Column[Any], ids: Sequence[str]) -> dict[str, int]:
    """Rows per status of ``instances`` or ``tasks`` among the given instance ids."""
    table = column.table
    counts: dict[str, int] = {}
    async with rt.database().connect() as conn:
        for i in range(0, len(ids), CHUNK):
            stmt = (
                sa.select(table.c.status, sa.func.count())
                .where(column.in_(list(ids[i : i + CHUNK])))
                .group_by(table.c.status)
            )
            for status, count in await conn.execute(stmt):
                counts[str(status)] = counts.get(str(status), 0) + int(count)
    return counts


class Finishes:
    """Engine listener: resolves a future per instance when its terminal event is committed.

    The measured window then holds no client-side reads (``Engine.wait_finished`` queries the
    store once per call, and 200 such reads compete with the commit loop for connections).
    """

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self._waiters: dict[str, asyncio.Future[str]] = {}

    def __call__(self, events: list[tuple[int, Event]]) -> None:
        for _, e in events:
            if isinstance(e, TERMINAL):
                self.status[e.instance_id] = e.type_name
                fut = self._waiters.pop(e.instance_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(e.type_name)

    async def wait(self, instance_id: str) -> str:
        if instance_id in self.status:
            return self.status[instance_id]
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[instance_id] = fut
        return await fut


async def _run_one(
    rt: Runtime, finishes: Finishes, stored: StoredDefinition, latencies: list[float]
) -> str:
    # what the API submits: the version it resolved and the inputs it checked
    start = StartInstance(stored.process_id, {}, version=stored.version, inputs_checked=True)
    t0 = time.perf_counter()
    iid = await rt.engine.submit(start)
    assert isinstance(iid, str)
    await finishes.wait(iid)
    latencies.append(time.perf_counter() - t0)
    return iid


async def _run_sequentially(
    rt: Runtime,
    finishes: Finishes,
    stored: StoredDefinition,
    instances: int,
    latencies: list[float],
) -> list[str]:
    """One instance in flight at a time: the next starts once the previous one finished."""
    return [await _run_one(rt, finishes, stored, latencies) for _ in range(instances)]


@dataclass
class _Window:
    wall_s: float
    cpu_s: float
    rss_at_start_mb: float
    ids: list[str]
    latencies_s: list[float]


async def _measure(
    rt: Runtime,
    document: JSONObject,
    instances: int,
    warm_plan: bool,
    window: Window | None,
    *,
    sequential: bool = False,
) -> _Window:
    stored = await rt.definitions.publish(document)
    if warm_plan:  # a long-running server has compiled the plan of a process it runs
        rt.definitions.plan_for(stored)
    finishes = Finishes()
    rt.engine.subscribe(finishes)
    await rt.engine.start()
    rss = peak_rss_mb()
    latencies: list[float] = []
    with window() if window is not None else contextlib.nullcontext():
        t0, c0 = time.perf_counter(), time.process_time()
        if sequential:
            ids = await _run_sequentially(rt, finishes, stored, instances, latencies)
        else:
            ids = await asyncio.gather(
                *(_run_one(rt, finishes, stored, latencies) for _ in range(instances))
            )
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return _Window(wall_s, cpu_s, rss, list(ids), latencies)


async def _result(
    rt: Runtime,
    workload: str,
    params: dict[str, int],
    w: _Window,
    nodes_per_instance: int,
) -> Result:
    """Counts come from the store after the clock stopped: what was durably recorded."""
    ids = w.ids
    task_status = await _counts(rt, tasks.c.instance_id, ids)
    instance_status = await _counts(rt, instances.c.id, ids)
    completed = instance_status.get("completed", 0)
    return Result(
        workload=workload,
        params=params,
        wall_s=w.wall_s,
        cpu_s=w.cpu_s,
        rss_at_start_mb=w.rss_at_start_mb,
        tasks=nodes_per_instance * completed,
        task_rows=sum(task_status.values()),
        instances=len(ids),
        completed=completed,
        task_status=task_status,
        latencies_s=w.latencies_s,
    )


async def run_w1(
    database_url: str,
    instances: int = 200,
    nodes: int = 10,
    *,
    warm_plan: bool = True,
    window: Window | None = None,
) -> Result:
    rt = await _runtime(database_url)
    try:
        w = await _measure(rt, w1_document(nodes), instances, warm_plan, window)
        params = {"instances": instances, "nodes": nodes}
        return await _result(rt, "w1", params, w, nodes)
    finally:
        await rt.close()


async def run_w1seq(
    database_url: str,
    instances: int = 200,
    nodes: int = 10,
    *,
    warm_plan: bool = True,
    window: Window | None = None,
) -> Result:
    """W1's instances run one after another: steps/s and per-instance latency of one chain."""
    rt = await _runtime(database_url)
    try:
        doc = w1_document(nodes)
        w = await _measure(rt, doc, instances, warm_plan, window, sequential=True)
        params = {"instances": instances, "nodes": nodes}
        return await _result(rt, "w1seq", params, w, nodes)
    finally:
        await rt.close()


async def run_w2(
    database_url: str, n: int = 1000, *, warm_plan: bool = True, window: Window | None = None
) -> Result:
    rt = await _runtime(database_url)
    try:
        w = await _measure(rt, w2_document(n), 1, warm_plan, window)
        return await _result(rt, "w2", {"n": n}, w, n + 2)
    finally:
        await rt.close()
