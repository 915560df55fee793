"""Workspace-deletion wiring (docs/workspaces.md): the SQL adapter, the job under leader lease
``workspace-deletion`` with its metrics, cancelling through the engine, and the blob hook
(the blob store's workspace prefix, ``payload_blobs.WorkspaceBlobRemover``; ``NoBlobs`` when
nothing is offloaded)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cadenza.application.agents import AgentRegistry
from cadenza.application.engine import Engine
from cadenza.application.leadership import Leadership
from cadenza.application.ports import Clock
from cadenza.application.ports_workspaces import NoBlobs, WorkspaceBlobs
from cadenza.application.runtime_config import RuntimeConfig
from cadenza.application.workspace_deletion_job import (
    DELETION_LEASE,
    Cancel,
    DeletionSettings,
    WorkspaceDeletionJob,
)
from cadenza.bootstrap.cache import Caching
from cadenza.bootstrap.store import leader_leases
from cadenza.domain import commands as cmd
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.workspace_deletion_metrics import (
    WorkspaceDeletionMetrics,
)
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.workspace_deletion import SqlWorkspaceDeletion
from cadenza.settings import Settings


def cancelling(engine: Engine) -> Cancel:
    """The engine's normal cancel path, as an operator's cancel takes it."""

    async def cancel(instance_id: str, why: str) -> object:
        return await engine.submit(cmd.CancelInstance(instance_id, why))

    return cancel


def workspace_removed(
    agents: AgentRegistry, caching: Caching, config: RuntimeConfig | None = None
) -> Callable[[str], Awaitable[None]]:
    """After a workspace's rows were deleted: this process's agent list, the shared snapshot
    and (``AgentsChanged`` on the bus) every other process's list are read again; its stored
    providers and MCP servers are dropped here and (``ConfigChanged``) everywhere at once."""

    async def removed(workspace_id: str) -> None:
        agents.invalidate()
        if caching.snapshots is not None:
            await caching.snapshots.changed()
        await caching.announcer.agents_changed()
        if config is not None:
            await config.workspace_removed(workspace_id)

    return removed


@dataclass
class DeletionParts:
    store: SqlWorkspaceDeletion
    job: WorkspaceDeletionJob
    leadership: Leadership  # runs ``job`` while this process holds lease workspace-deletion


def build_deletion(
    settings: Settings,
    store: SqlStore,
    clock: Clock,
    metrics: Metrics,
    owner: str,
    cancel: Cancel,
    removed: Callable[[str], Awaitable[None]] | None = None,
    blobs: WorkspaceBlobs | None = None,
) -> DeletionParts:
    sql = SqlWorkspaceDeletion(store)
    parts: DeletionParts | None = None  # the leadership is built after the job it runs
    observed = WorkspaceDeletionMetrics(
        metrics.registry, lambda: parts is not None and parts.leadership.leader
    )
    job = WorkspaceDeletionJob(
        sql,
        clock,
        DeletionSettings(
            interval_s=settings.workspace_deletion_interval_s,
            batch=settings.workspace_deletion_batch,
            pause_s=settings.workspace_deletion_pause_s,
        ),
        cancel,
        blobs=blobs or NoBlobs(),
        removed=removed,
        on_batch=observed.on_batch,
        on_done=observed.on_done,
    )
    leadership = Leadership(
        leader_leases(store), DELETION_LEASE, owner, clock, settings.leader_lease_s, job.run
    )
    parts = DeletionParts(sql, job, leadership)
    return parts
