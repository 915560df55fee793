"""Kill at one crash point again and again, restart, and check that nothing is lost or doubled.

An *episode* starts the same jobs as the fault-free reference run, then forks engines (see
``forkserver``) armed to SIGKILL themselves on the N-th pass of the crash point, N drawn from a
seeded RNG in ``1..cap``, until one finishes every instance. After every kill the journals are
read: every instance is still there and no task has two results. After every episode the
instances' outputs equal the reference's and every recorded ``http`` result's idempotency key
reached the side-effect server (executed at least once, same key on every re-run).

A kill that made no progress (no new task result) doubles ``cap``, so an episode always ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.crash.forkserver import ForkServer
from tests.crash.workload import (
    SideEffects,
    definition,
    outputs,
    settings,
    snapshot,
    start_instances,
)

from cadenza.domain import events as ev
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "bench" / "results" / "crash-points.json"
WORKER_ID = "crash-worker"
FIRST_CAP = 4
REQUEUE = "during-sweeper-requeue"
LEAVES_LEASES = "after-claim-before-execute"
CHILD_TIMEOUT_S = 120.0  # a child that neither dies nor finishes is a hang: fail, do not wait


@dataclass
class Tally:
    """What one (backend, crash point) run did; a row of the published table."""

    kills: int = 0
    episodes: int = 0
    instances: int = 0
    restarts: int = 0
    lost: int = 0
    duplicate_results: int = 0
    released_requeues: int = 0  # leases given up by a restarted worker: not charged
    charged_requeues: int = 0  # leases that expired: count toward max_requeues
    helper_kills: int = 0  # kills at the helper point that leaves leases to requeue
    http_requests: int = 0
    http_keys: int = 0
    seconds: float = 0.0


@dataclass
class CrashRun:
    fork: ForkServer
    side: SideEffects
    mcp_url: str
    url: str
    log: Path
    seed: int
    jobs: list[JSONObject] = field(default_factory=list)
    expected: list[tuple[str, JSON]] = field(default_factory=list)
    migrated: bool = False

    def engine_settings(self, url: str, failpoints: str = "") -> dict[str, object]:
        return settings(url, self.mcp_url, worker_id=WORKER_ID, failpoints=failpoints)

    async def run_child(self, config: Mapping[str, object]) -> int:
        child = await self.fork.spawn(config, self.log)
        try:
            return await asyncio.wait_for(child.exit_code(), CHILD_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            raise AssertionError(f"a child hung; log:\n{self.tail()}") from None

    def triggered(self, offset: int) -> str:
        """The crash point a child killed itself at (its log line since ``offset``)."""
        with self.log.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        found = [x.split()[1] for x in lines if x.startswith("failpoint ") and "triggered" in x]
        assert len(found) == 1, lines
        return found[0]

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])

    async def reference(self, url: str, rng: random.Random, jobs: int) -> None:
        """The jobs and their outputs in a fault-free run (on its own database)."""
        self.jobs = [
            {
                "n": rng.randint(2, 30),
                "items": [rng.randint(1, 9) for _ in range(rng.randint(1, 3))],
            }
            for _ in range(jobs)
        ]
        config = self.engine_settings(url)
        ids = await start_instances(config, definition(self.side.url), self.jobs, migrate=True)
        assert await self.run_child(config) == 0, self.tail()
        store = SqlStore(create_engine(url))
        try:
            self.expected = await outputs(store, ids)
        finally:
            await store.close()
        assert [s for s, _ in self.expected] == ["completed"] * jobs, self.expected

    async def kill_at(self, point: str, kills: int) -> Tally:
        """Episodes until ``kills`` SIGKILLs landed at ``point``; every check after each."""
        rng = random.Random(f"{self.seed}:{point}")
        tally = Tally()
        began = time.monotonic()
        store = SqlStore(create_engine(self.url))
        try:
            while tally.kills < kills:
                await self._episode(point, kills, rng, store, tally)
        finally:
            await store.close()
        tally.seconds = round(time.monotonic() - began, 1)
        return tally

    async def _episode(
        self, point: str, kills: int, rng: random.Random, store: SqlStore, tally: Tally
    ) -> None:
        config = self.engine_settings(self.url)
        doc = definition(self.side.url)
        ids = await start_instances(config, doc, self.jobs, migrate=not self.migrated)
        self.migrated = True
        tally.episodes += 1
        tally.instances += len(ids)
        cap, progress, killed_at = FIRST_CAP, -1, ""
        while True:
            armed = tally.kills < kills
            spec = _spec(point, rng.randint(1, cap), killed_at) if armed else ""
            start = self.log.stat().st_size if self.log.exists() else 0
            code = await self.run_child(self.engine_settings(self.url, spec))
            tally.restarts += 1
            snap = await snapshot(store, ids)
            problems = snap.problems(finished=code == 0)
            tally.lost += sum("no journal" in p for p in problems)
            tally.duplicate_results += len(problems)
            assert problems == [], problems
            if code == 0:
                break
            assert (code, armed) == (-signal.SIGKILL, True), f"exit {code}:\n{self.tail()}"
            killed_at = self.triggered(start)
            if killed_at == point:
                tally.kills += 1
            else:
                tally.helper_kills += 1
            cap = FIRST_CAP if snap.terminal_events > progress else cap * 2
            progress = snap.terminal_events
        assert await outputs(store, ids) == self.expected
        requeued = [
            e for j in snap.journals.values() for _, e in j if isinstance(e, ev.TaskRequeued)
        ]
        tally.released_requeues += sum(not e.charged for e in requeued)
        tally.charged_requeues += sum(e.charged for e in requeued)
        keys = snap.http_keys()
        requested = {k: n for k, n in self.side.requests.items() if k.split(":")[0] in ids}
        assert set(requested) == keys  # every recorded result was executed, under one key
        tally.http_keys += len(keys)
        tally.http_requests += sum(requested.values())


def _spec(point: str, n: int, killed_at: str) -> str:
    """What to arm in the next child. The sweeper re-queues only what a killed predecessor
    left leased, so its point alternates with a kill after a claim, which leaves such leases."""
    if point != REQUEUE:
        return f"{point}:{n}"
    return f"{REQUEUE}:1" if killed_at == LEAVES_LEASES else f"{LEAVES_LEASES}:{n}"


def record(backend: str, point: str, tally: Tally) -> None:
    """Merge one row into the JSON summary that ``python -m bench.crash`` prints."""
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, object] = {}
    if SUMMARY.exists():
        with contextlib.suppress(ValueError):
            rows = json.loads(SUMMARY.read_text())
    rows[f"{backend}/{point}"] = asdict(tally) | {"backend": backend, "point": point}
    SUMMARY.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")


# SQLAlchemy's pool logs this, with a traceback, when it finalizes a pooled connection the
# garbage collector found unreturned (``_finalize_fairy``): a process killed at a crash point
# can leave the driver's connection to the dead transaction behind. Nothing is lost or doubled
# (the counts say so); it is reported, not failed (docs/reliability.md).
KNOWN_POOL_RECORD = "Exception during reset or similar"
_TRACEBACK_LINE = re.compile(
    r"^(\s|$|Traceback \(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause|[\w.]+(Error|Exception|Exit|Interrupt)\b)"
)


def without_known_tracebacks(text: str) -> tuple[str, int]:
    """``text`` without the pool finalizer's records (and their tracebacks); how many."""
    kept: list[str] = []
    known = 0
    skipping = False
    for line in text.splitlines():
        if KNOWN_POOL_RECORD in line:
            skipping, known = True, known + 1
            continue
        if skipping and _TRACEBACK_LINE.match(line):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept), known
