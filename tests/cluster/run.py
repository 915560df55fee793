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
import sqlalchemy as sa
from tests.cluster.harness import READY_TIMEOUT_S, Cluster
from tests.cluster.metrics import store_running
from tests.cluster.workload import Workload
from tests.e2e.test_crash_recovery import journal_problems

from cadenza.application.agent_service import AGENT_HEALTH_LEASE
from cadenza.domain import events as ev
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import leaders

START_CONCURRENCY = 8
PACE_S = (0.1, 0.8)  # between one restart and the next kill (spreads the kills; not a wait)
POLL_S = 0.2


@dataclass
class Started:
    instance_id: str
    number: int  # which instance of the run (its job is ``workload.job(number)``)
    api: str  # the API process that accepted it


@dataclass(frozen=True)
class Takeover:
    """An agents leader SIGKILLed at ``killed_at`` (epoch s); ``standby`` took the health-check
    lease at ``acquired_at`` (the lease row, the standby's clock) and its readiness said so."""

    killed: str
    standby: str
    killed_at: float
    acquired_at: float

    @property
    def after_s(self) -> float:
        return self.acquired_at - self.killed_at


@dataclass
class Chaos:
    kills: Counter[str] = field(default_factory=Counter)
    with_work_left: int = 0  # kills that found unfinished instances
    takeovers: list[Takeover] = field(default_factory=list)

    def kills_of(self, cluster: Cluster, role: str) -> int:
        return sum(n for name, n in self.kills.items() if cluster.members[name].role_name == role)


def victims(rng: random.Random, cluster: Cluster, kills: int) -> list[str]:
    """``kills`` process names drawn with ``rng``: API 1 and one process of every other role
    first (when ``kills`` allows), the rest from all processes, in a shuffled order. (An
    ``agents`` name stands for whichever agents process leads when its turn comes: ``chaos``.)"""
    names = sorted(cluster.members)
    first_api = cluster.api(1).name
    roles = sorted({m.role_name for m in cluster.members.values()} - {cluster.api(1).role_name})
    must = [first_api] + [
        rng.choice([n for n in names if cluster.members[n].role_name == r]) for r in roles
    ]
    out = must[:kills] + [rng.choice(names) for _ in range(kills - len(must))]
    rng.shuffle(out)
    return out


async def leader(cluster: Cluster, name: str) -> str:
    """For an agents process: the agents process that holds the lease now (``name`` when none
    says so); any other process: ``name``."""
    if cluster.members[name].role_name != "agents":
        return name
    for m in cluster.members.values():
        if m.role_name == "agents" and (await readiness(cluster, m.name)).get("leader") is True:
            return m.name
    return name


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
            name = await leader(cluster, name)
            leads = await is_leader(cluster, name)
            await cluster.kill(name)
            killed_at = time.time()
            done.kills[name] += 1
            if leads:
                done.takeovers.append(await takeover(cluster, store, name, killed_at))
            if await store_running(store.engine):
                done.with_work_left += 1
            await cluster.restart(name)
        started += await wave
    return done, started


async def readiness(cluster: Cluster, name: str) -> dict[str, object]:
    async with cluster.session.get(cluster.members[name].url + "/health/readiness") as r:
        body: dict[str, object] = await r.json()
        return body


async def is_leader(cluster: Cluster, name: str) -> bool:
    """Whether ``name`` is an agents process holding the health-check lease."""
    if cluster.members[name].role_name != "agents":
        return False
    return (await readiness(cluster, name)).get("leader") is True


async def takeover(cluster: Cluster, store: SqlStore, killed: str, killed_at: float) -> Takeover:
    """Wait (before the killed leader restarts) until another agents process's readiness says
    it leads, then read when it took the lease."""
    others = [m.name for m in cluster.members.values() if m.role_name == "agents"]
    others.remove(killed)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for name in others:
            body = await readiness(cluster, name)
            if body.get("leader") is True:
                async with store.engine.connect() as conn:
                    q = sa.select(leaders.c.acquired_at).where(leaders.c.name == AGENT_HEALTH_LEASE)
                    acquired_at = float((await conn.execute(q)).scalar_one())
                return Takeover(killed, name, killed_at, acquired_at)
        assert time.monotonic() < deadline, f"no agents process leads after {killed} was killed"
        await asyncio.sleep(POLL_S)


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


def accepted_keys(log_text: str) -> set[str]:
    return set(ACCEPTED.findall(log_text))


def accepted_twice(log_text: str) -> list[str]:
    """Idempotency keys (one task attempt each) whose result the API accepted more than once."""
    counts = Counter(ACCEPTED.findall(log_text))
    return sorted(k for k, n in counts.items() if n > 1)


# Errors a process logs with a traceback and survives, known and reported
# (docs/_parts/cluster.md): a worker's lease renewal that lost a MariaDB deadlock on each of
# its tries; the sweeper renews again at its next pass.
KNOWN_ERRORS = (
    re.compile(r"^ERROR cadenza\.application\.engine\.sweeper: lease renewal failed\n.*"
               r"\(1213, 'Deadlock found", re.DOTALL),
    re.compile(r"^\S+ \[error\s*\] lease renewal failed\s+"
               r"\[cadenza\.application\.engine\.sweeper\].*\(1213, 'Deadlock found", re.DOTALL),
    # the MCP SDK's client logs its own traceback when the proxy it talks to is killed
    # mid-request; Cadenza's session ends with a warning and the tool node is retried
    re.compile(r"^ERROR mcp\.client\.streamable_http: Error in post_writer\n.*"
               r"httpx2\.(ReadError|ConnectError|RemoteProtocolError)", re.DOTALL),
    re.compile(r"^\S+ \[error\s*\] Error in post_writer\s+\[mcp\.client\.streamable_http\]"
               r".*\b(ReadError|ConnectError|RemoteProtocolError)\b", re.DOTALL),
)  # fmt: skip
# a record starts with its level (the standard library's format) or with structlog's
# timestamp and level (the console renderer of `cadenza worker` and the other roles)
_LOG_RECORD = re.compile(
    r"^(?=(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) |\d{4}-\d\d-\d\dT\S+ \[)", re.MULTILINE
)


def tracebacks(log_text: str) -> tuple[int, int]:
    """(unexpected, known) log records with a traceback in a process's log."""
    unexpected = known = 0
    for record in _LOG_RECORD.split(log_text):
        if "Traceback (most recent call last)" not in record:
            continue
        if any(k.search(record) for k in KNOWN_ERRORS):
            known += 1
        else:
            unexpected += 1
    return unexpected, known
