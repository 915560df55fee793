"""The retention job: every ``interval_s``, delete the instances each workspace's policy (or the
system default) says are due, in batches.

It runs in one process at a time, as the duty of leader lease ``retention``
(``application.leadership``; ``cadenza agents`` and the all-in-one ``cadenza serve`` run it).
Each batch is its own short transaction of at most ``batch`` instances and their rows, and the
job pauses ``pause_s`` between batches, so the engine's commits interleave with it: on SQLite
a batch queues on the same in-process lock as the engine's transactions instead of holding
the file for a whole run. The cutoffs are taken once per run from the clock (a fake one in
the tests), so a run ends even while new instances keep finishing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.application.outage_log import OutageLog
from cadenza.application.ports import Clock, StoreConflict
from cadenza.application.ports_retention import PurgeScope, RetentionStore
from cadenza.domain.retention import Cutoffs, RetentionPolicy

log = logging.getLogger(__name__)

RETENTION_LEASE = "retention"
AUDIT = "audit"  # the audit log's rows in ``RetentionRun.deleted`` and the metrics


class AuditPrune(Protocol):
    """The audit log's own retention (``AuditLog.prune``): kept apart from run history."""

    async def prune(self, before: float, limit: int) -> int: ...


@dataclass(frozen=True)
class RetentionSettings:
    default: RetentionPolicy  # for workspaces without a policy of their own
    interval_s: float = 300.0
    batch: int = 500  # instances per transaction (with all their rows)
    pause_s: float = 0.05  # between two batches
    audit_keep_s: float | None = None  # audit rows older than this are deleted; None keeps


@dataclass
class RetentionRun:
    """What one run did."""

    started_at: float
    duration_s: float = 0.0
    batches: int = 0
    scopes: int = 0  # workspace policies applied (the default counts as one)
    deleted: dict[str, int] = field(default_factory=dict)  # rows per table
    conflicts: int = 0  # batches that lost a deadlock (the next run does them)
    longest_batch_s: float = 0.0  # the longest transaction (the engine waits that long, SQLite)

    @property
    def instances(self) -> int:
        return self.deleted.get("instances", 0)


def _noop(_: object) -> None:
    return None


class RetentionJob:
    def __init__(
        self,
        store: RetentionStore,
        clock: Clock,
        settings: RetentionSettings,
        *,
        on_batch: Callable[[Mapping[str, int]], None] = _noop,
        on_run: Callable[[RetentionRun], None] = _noop,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        audit: AuditPrune | None = None,
        collect_blobs: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._store = store
        # one page of the orphan blob collector per run (``blob_gc``); None: no blob store
        self._collect_blobs = collect_blobs
        self._clock = clock
        self.settings = settings
        self._on_batch = on_batch
        self._on_run = on_run
        self._sleep = sleep
        self._audit = audit
        self.last_run: RetentionRun | None = None
        self._outage = OutageLog(log, "retention run")

    async def run(self) -> None:
        """The duty the lease guards: a run every ``interval_s`` until cancelled."""
        while True:
            with self._outage.round():  # a store away: the next run tries again
                await self.run_once()
            await self._sleep(self.settings.interval_s)

    async def run_once(self) -> RetentionRun:
        """One pass over every workspace policy, then the default for the others."""
        now = self._clock.now()
        run = RetentionRun(started_at=now)
        own = await self._store.policies()
        for stored in own:
            if not stored.policy.keeps_everything:
                scope = PurgeScope(workspace=stored.workspace_id)
                await self._apply(run, scope, stored.policy.cutoffs(now))
        if not self.settings.default.keeps_everything:
            others = PurgeScope(excluding=frozenset(s.workspace_id for s in own))
            await self._apply(run, others, self.settings.default.cutoffs(now))
        await self._prune_audit(run, now)
        if self._collect_blobs is not None:
            orphans = await self._collect_blobs()
            if orphans:
                run.deleted["orphan_blobs"] = orphans
                self._on_batch({"orphan_blobs": orphans})
        run.duration_s = max(0.0, self._clock.now() - now)
        self.last_run = run
        self._on_run(run)
        self._log(run)
        return run

    async def _apply(self, run: RetentionRun, scope: PurgeScope, cutoffs: Cutoffs) -> None:
        """Batches until one comes back short (nothing more is due in this scope)."""
        run.scopes += 1
        limit = self.settings.batch
        while True:
            began = self._clock.now()
            try:
                counts = await self._store.purge(scope, cutoffs, limit)
            except StoreConflict as exc:  # a deadlock victim, rolled back whole
                run.conflicts += 1
                log.warning("retention batch lost a conflict (the next run retries): %s", exc)
                return
            run.batches += 1
            run.longest_batch_s = max(run.longest_batch_s, self._clock.now() - began)
            for table, n in counts.items():
                run.deleted[table] = run.deleted.get(table, 0) + n
            self._on_batch(counts)
            if counts.get("instances", 0) < limit:
                return
            await self._sleep(self.settings.pause_s)  # the engine's commits go first

    async def _prune_audit(self, run: RetentionRun, now: float) -> None:
        """The audit log's retention: its own horizon, in batches like the instances'."""
        keep = self.settings.audit_keep_s
        if self._audit is None or keep is None:
            return
        run.scopes += 1
        limit = self.settings.batch
        while True:
            n = await self._audit.prune(now - keep, limit)
            run.batches += 1
            run.deleted[AUDIT] = run.deleted.get(AUDIT, 0) + n
            self._on_batch({AUDIT: n})
            if n < limit:
                return
            await self._sleep(self.settings.pause_s)

    def _log(self, run: RetentionRun) -> None:
        if run.scopes == 0:
            log.debug("retention run: no policy deletes anything")
            return
        rows = ", ".join(f"{t}={n}" for t, n in sorted(run.deleted.items()) if n)
        log.info(
            "retention run: %d instances deleted (%s) in %d batches over %d policies, %.3f s "
            "(longest batch %.3f s)",
            run.instances,
            rows or "no rows",
            run.batches,
            run.scopes,
            run.duration_s,
            run.longest_batch_s,
        )
