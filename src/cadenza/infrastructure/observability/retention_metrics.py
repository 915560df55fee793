"""Prometheus metrics of the retention job (``application.retention_job``), in the process that
holds lease ``retention`` (``cadenza agents`` or ``cadenza serve``): sum the counter over
processes; the gauges of the standbys stay at 0."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from cadenza.application.retention_job import RetentionRun


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry, leader: Callable[[], bool]) -> None:
        Gauge(
            "cadenza_retention_leader",
            "1 while this process holds lease 'retention' and runs the retention job (summed "
            "over the processes that can: 1)",
            registry=registry,
        ).set_function(lambda: float(leader()))
        self.deleted = Counter(
            "cadenza_retention_deleted_total",
            "Rows the retention job deleted, by kind (the table: instances, events, tasks, "
            "timers, feed, outbox, assignments, ...)",
            ["kind"],
            registry=registry,
        )
        self.last_run = Gauge(
            "cadenza_retention_last_run_timestamp_seconds",
            "When the last retention run of this process started (Unix time; 0: never)",
            registry=registry,
        )
        self.last_duration = Gauge(
            "cadenza_retention_last_run_duration_seconds",
            "How long the last retention run of this process took",
            registry=registry,
        )
        self.longest_batch = Gauge(
            "cadenza_retention_last_run_longest_batch_seconds",
            "The longest batch transaction of the last run (on SQLite the engine's commits "
            "wait for it; lower retention_batch when it is long)",
            registry=registry,
        )
        self.runs = Counter(
            "cadenza_retention_runs_total", "Retention runs of this process", registry=registry
        )

    def on_batch(self, counts: Mapping[str, int]) -> None:
        for kind, n in counts.items():
            if n:
                self.deleted.labels(kind).inc(n)

    def on_run(self, run: RetentionRun) -> None:
        self.runs.inc()
        self.last_run.set(run.started_at)
        self.last_duration.set(run.duration_s)
        self.longest_batch.set(run.longest_batch_s)
