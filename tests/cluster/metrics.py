"""Scrape ``/metrics`` of every process that serves it and compare the sums with the store.

Counters live in the memory of the process that did the work, so a SIGKILL loses its share:
the comparison is over a *quiet window* (no kill in it): the increase of
``task_executions_total{status="completed"}`` summed over all processes must equal the number
of ``TaskCompleted`` events committed in the window. System-wide gauges
(``process_instances_active``, counted in the store) are not summed: each process must report
the store's count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.cluster.harness import Cluster, Member

EXECUTIONS = "task_executions_total"
ACTIVE = "process_instances_active"


@dataclass
class Scrape:
    """One process's samples: (name, sorted label pairs) -> value."""

    member: str
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def total(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    def labelled(self, name: str, label: str) -> set[str]:
        return {dict(ls).get(label, "") for (n, ls) in self.samples if n == name}


def parse(member: str, text: str) -> Scrape:
    out = Scrape(member)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


async def scrape(cluster: Cluster, m: Member) -> Scrape:
    """``GET /metrics`` of one process: the API's with the API key, a service port's with the
    metrics token."""
    secret = cluster.api_key if m.role.serves_api else cluster.env["CADENZA_METRICS_TOKEN"]
    async with cluster.session.get(
        m.url + "/metrics", headers={"Authorization": f"Bearer {secret}"}
    ) as r:
        text = await r.text()
        assert r.status == 200, f"{m.name} /metrics: {r.status} {text[:300]}"
    return parse(m.name, text)


async def scrape_all(cluster: Cluster) -> list[Scrape]:
    """Every process with a metrics port (API processes always; the others with ops ports)."""
    return [await scrape(cluster, m) for m in cluster.members.values() if m.role.metrics]


def completed_sum(scrapes: list[Scrape]) -> float:
    return sum(s.total(EXECUTIONS, status="completed") for s in scrapes)


async def store_completed(engine: AsyncEngine) -> int:
    """``TaskCompleted`` events in the journal (every instance)."""
    async with engine.connect() as conn:
        q = sa.text("SELECT count(*) FROM events WHERE type = 'TaskCompleted'")
        return int((await conn.execute(q)).scalar_one())


async def store_running(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        q = sa.text("SELECT count(*) FROM instances WHERE status = 'running'")
        return int((await conn.execute(q)).scalar_one())


@dataclass(frozen=True)
class Window:
    """The sums and the store at the start of a quiet window."""

    scraped: float
    stored: int


def problems(before: Window, after: list[Scrape], stored: int, running: int) -> list[str]:
    """What disagrees between the processes' metrics and the store (see the module doc)."""
    found: list[str] = []
    counted = completed_sum(after) - before.scraped
    if counted != stored - before.stored:
        found.append(
            f"{EXECUTIONS}{{status=completed}} rose by {counted:g} over the processes, "
            f"the journal by {stored - before.stored}"
        )
    for s in after:
        active = s.total(ACTIVE)
        if active != running:
            found.append(f"{s.member}: {ACTIVE} = {active:g}, the store has {running} running")
    return found


def unknown_node_types(scrapes: list[Scrape]) -> list[str]:
    """Processes that counted executions under ``node_type="unknown"``: a task completed by a
    commit in a process that neither scheduled nor ran it (e.g. a ``map`` or ``wait`` node
    completed by another process's commit). Printed, not asserted: see docs/_parts/cluster.md."""
    return [s.member for s in scrapes if "unknown" in s.labelled(EXECUTIONS, "node_type")]


def by_member(scrapes: list[Scrape]) -> dict[str, Counter[str]]:
    """A printable summary: completed executions per node type and process."""
    out: dict[str, Counter[str]] = {}
    for s in scrapes:
        c: Counter[str] = Counter()
        for (n, ls), v in s.samples.items():
            labels = dict(ls)
            if n == EXECUTIONS and labels.get("status") == "completed":
                c[labels.get("node_type", "")] += int(v)
        out[s.member] = c
    return out
