"""The audit log of the API process: the ``audit`` table and a counter of rows by family."""

from __future__ import annotations

from prometheus_client import Counter

from cadenza.application.audit import Auditor
from cadenza.bootstrap.runtime import Runtime, SystemClock
from cadenza.infrastructure.sql.audit import SqlAuditLog


def build_auditor(runtime: Runtime) -> Auditor:
    rows = Counter(
        "cadenza_audit_rows_total",
        "Audit rows written, by action family (definition, instance, user, auth, ...)",
        ["family"],
        registry=runtime.metrics.registry,
    )

    def count(action: str) -> None:
        rows.labels(action.partition(".")[0]).inc()

    return Auditor(SqlAuditLog(runtime.database()), SystemClock(), on_write=count)
