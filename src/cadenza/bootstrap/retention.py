"""Retention wiring: the policies and holds in the database, the job under its own leader lease
(``retention``) with its metrics, and the use cases the API serves. Nothing for ``memory://``:
it keeps nothing across restarts anyway."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from cadenza.application.blob_gc import BlobCollector
from cadenza.application.leadership import Leadership
from cadenza.application.ports import Clock
from cadenza.application.retention import Retention
from cadenza.application.retention_job import RETENTION_LEASE, RetentionJob, RetentionSettings
from cadenza.bootstrap.store import leader_leases
from cadenza.domain.retention import RetentionPolicy
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.retention_metrics import RetentionMetrics
from cadenza.infrastructure.sql.retention import SqlRetention
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings


@dataclass
class RetentionParts:
    service: Retention  # the API's use cases
    job: RetentionJob
    leadership: Leadership  # runs ``job`` while this process holds lease ``retention``
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Stand for the lease (roles with agent duties: ``cadenza agents``, ``serve``)."""
        if self._task is None:
            self._task = asyncio.create_task(self.leadership.run(), name="retention")

    async def aclose(self) -> None:
        """Stop the job and release the lease (its end does): a standby takes over."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def default_policy(settings: Settings) -> RetentionPolicy:
    """The system-wide default (PolicyInvalid when the settings contradict each other)."""
    return RetentionPolicy(settings.retention_finished_s, settings.retention_failed_s)


def build_retention(
    settings: Settings, store: SqlStore | MemoryStore, clock: Clock, metrics: Metrics, owner: str
) -> RetentionParts | None:
    if isinstance(store, MemoryStore):
        return None
    default = default_policy(settings)
    sql = SqlRetention(store)
    parts: RetentionParts | None = None  # the leadership is built after the job it runs
    observed = RetentionMetrics(
        metrics.registry, lambda: parts is not None and parts.leadership.leader
    )
    job = RetentionJob(
        sql,
        clock,
        RetentionSettings(
            default,
            interval_s=settings.retention_interval_s,
            batch=settings.retention_batch,
            pause_s=settings.retention_pause_s,
        ),
        on_batch=observed.on_batch,
        on_run=observed.on_run,
        collect_blobs=None
        if store.blobs is None
        else BlobCollector(store.blobs, sql.present, clock).collect_once,
    )
    leadership = Leadership(
        leader_leases(store), RETENTION_LEASE, owner, clock, settings.leader_lease_s, job.run
    )
    parts = RetentionParts(Retention(sql, clock, default), job, leadership)
    return parts
