"""Drive a cluster: publish, start instances round-robin over the API processes, kill and
restart processes on a seeded schedule, wait until every instance is finished, and check."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from tests.cluster.harness import Cluster
from tests.cluster.metrics import store_running
from tests.cluster.workload import Workload
from tests.e2e.test_crash_recovery import journal_problems

from cadenza.domain import events as ev
from cadenza.infrastructure.sql.store import SqlStore

START_CONCURRENCY = 8
PACE_S = (0.1, 0.8)  # between one restart and the next kill (spreads the kills; not a wait)
POLL_S = 0.2


@dataclass
class Started:
    instance_id: str
    number: int  # which instance of the run (its job is ``workload.job(number)``)
    api: str  # the API process that accepted it


@dataclass
class Chaos:
    kills: Counter[str] = field(default_factory=Counter)
    with_work_left: int = 0  # kills that found unfinished instances


def victims(rng: random.Random, cluster: Cluster, kills: int) -> list[str]:
    """``kills`` process names drawn with ``rng``; API 1 among them at least once (its event
    stream must resume after a kill)."""
    names = sorted(cluster.members)
    out = [rng.choice(names) for _ in range(kills)]
    first_api = cluster.api(1).name
    if kills and first_api not in out:
        out[len(out) // 2] = first_api
    return out


async def publish(cluster: Cluster, workload: Workload) -> None:
    c = cluster.client(cluster.api(1).name)
    for doc in workload.documents:
        r = await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True})
        assert r.status in (200, 201), (doc.get("id"), r.body)


async def start_one(cluster: Cluster, workload: Workload, number: int, tag: str) -> Started:
    """Start instance ``number`` on API ``number mod len(apis) + 1``; when that process is
    down, wait for it and send the same request again (the idempotency key makes a retry of
    an accepted request return the same instance)."""
    apis = cluster.apis()
    m = apis[number % len(apis)]
    job, _ = workload.job(number)
    body = {
        "process_id": job.process_id,
        "inputs": job.inputs,
        "idempotency_key": f"{tag}-{number}",
    }
    while True:
        await m.ready.wait()
        try:
            r = await cluster.client(m.name).post("/api/v1/processes/instances", body)
        except (TimeoutError, aiohttp.ClientError, OSError):
            continue
        if r.status >= 500:
            continue
        assert r.status in (200, 201), (m.name, r.status, r.body)
        return Started(str(r.body["id"]), number, m.name)


async def start_many(
    cluster: Cluster, workload: Workload, numbers: range, tag: str
) -> list[Started]:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(n: int) -> Started:
        async with gate:
            return await start_one(cluster, workload, n, tag)

    return list(await asyncio.gather(*(one(n) for n in numbers)))


async def chaos(
    cluster: Cluster,
    workload: Workload,
    names: list[str],
    rng: random.Random,
    store: SqlStore,
    instances: int,
) -> tuple[Chaos, list[Started]]:
    """Start ``instances`` in ``len(names) + 1`` waves; while each wave starts, kill the next
    named process (SIGKILL) and restart it until ready, so kills land amid starts and work."""
    done = Chaos()
    started: list[Started] = []
    waves = len(names) + 1
    bounds = [instances * k // waves for k in range(waves + 1)]
    for k, name in enumerate([*names, ""]):
        wave = asyncio.create_task(
            start_many(cluster, workload, range(bounds[k], bounds[k + 1]), "c")
        )
        if name:
            await asyncio.sleep(rng.uniform(*PACE_S))
            await cluster.kill(name)
            done.kills[name] += 1
            if await store_running(store.engine):
                done.with_work_left += 1
            await cluster.restart(name)
        started += await wave
    return done, started


async def until_finished(store: SqlStore, count: int, timeout_s: float, cluster: Cluster) -> None:
    """Wait until ``count`` instances exist and none is running."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await store.count_instances()
        if sum(counts.values()) >= count and not counts.get("running"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not finished in {timeout_s:g}s: {counts}\n{cluster.logs()}")
        await asyncio.sleep(POLL_S)


@dataclass
class Verdict:
    journals: dict[str, list[tuple[int, ev.Event]]]
    problems: list[str]

    def stream(self) -> dict[str, list[tuple[int, str]]]:
        return {i: [(s, e.type_name) for s, e in j] for i, j in self.journals.items()}

    def completed_events(self) -> int:
        return sum(isinstance(e, ev.TaskCompleted) for j in self.journals.values() for _, e in j)


async def verify(store: SqlStore, workload: Workload, started: list[Started]) -> Verdict:
    """Every started instance completed with its job's fault-free outputs; no journal has a
    gap, a task with two results, or a TaskCompleted twice in one attempt."""
    problems: list[str] = []
    journals: dict[str, list[tuple[int, ev.Event]]] = {}
    for s in started:
        row = await store.get_instance(s.instance_id)
        job, expected = workload.job(s.number)
        if row is None or row.status != "completed" or row.outputs != expected:
            got = (row.status, row.outputs, row.error) if row is not None else "lost"
            problems.append(f"{s.instance_id} ({job.process_id} via {s.api}): {got} != {expected}")
        journals[s.instance_id] = journal = await store.journal(s.instance_id)
        problems += journal_problems(s.instance_id, journal)
    return Verdict(journals, problems)


ACCEPTED = re.compile(r"^accepted (\S+)$", re.MULTILINE)


def accepted_twice(log_text: str) -> list[str]:
    """Idempotency keys (one task attempt each) whose result the API accepted more than once."""
    counts = Counter(ACCEPTED.findall(log_text))
    return sorted(k for k, n in counts.items() if n > 1)
