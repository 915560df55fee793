"""Prometheus metrics of the workspace-deletion job (``application.workspace_deletion_job``), in
the process that holds lease ``workspace-deletion``: sum the counters over processes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge


class WorkspaceDeletionMetrics:
    def __init__(self, registry: CollectorRegistry, leader: Callable[[], bool]) -> None:
        Gauge(
            "cadenza_workspace_deletion_leader",
            "1 while this process holds lease 'workspace-deletion' and runs the deletion job",
            registry=registry,
        ).set_function(lambda: float(leader()))
        self.deleted = Counter(
            "cadenza_workspace_deletion_deleted_total",
            "Rows the workspace-deletion job deleted, by kind (the table: instances, events, "
            "tasks, definitions, agents, api_keys, ...)",
            ["kind"],
            registry=registry,
        )
        self.workspaces = Counter(
            "cadenza_workspaces_deleted_total",
            "Workspaces the deletion job removed completely",
            registry=registry,
        )

    def on_batch(self, counts: Mapping[str, int]) -> None:
        for kind, n in counts.items():
            if n:
                self.deleted.labels(kind).inc(n)

    def on_done(self, workspace_id: str, totals: Mapping[str, int]) -> None:
        self.workspaces.inc()
