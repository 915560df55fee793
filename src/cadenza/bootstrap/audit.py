"""The audit log: the API process's Auditor (the ``audit`` table, a counter of rows by
family), the engine's batches writing the rows of instance operations, and rows for changes
made on the host by the CLI."""

from __future__ import annotations

import getpass
import time

from prometheus_client import Counter

from cadenza.application.audit import Auditor, take_pending
from cadenza.application.audit_ports import AuditEntry
from cadenza.application.pii_codec import redacted_copy
from cadenza.bootstrap.lifecycle import Runtime
from cadenza.bootstrap.runtime import SystemClock
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.sql.audit import SqlAuditLog


def build_auditor(runtime: Runtime) -> Auditor:
    """The Auditor of an API process over the SQL store's database (``database()`` refuses
    ``memory://``). The engine's commands from the API (start, cancel, retry, signal) then
    carry their audit row into the group-commit batch, which the SQL store writes in the
    batch's transaction."""
    rows = Counter(
        "cadenza_audit_rows_total",
        "Audit rows written, by action family (definition, instance, user, auth, ...)",
        ["family"],
        registry=runtime.metrics.registry,
    )

    def count(action: str) -> None:
        rows.labels(action.partition(".")[0]).inc()

    auditor = Auditor(SqlAuditLog(runtime.database()), SystemClock(), on_write=count)
    runtime.engine.use_audit(take_pending)  # the SQL store saves ``Changes.audit``
    if runtime.redaction is not None:  # summaries quote payloads (a signal's, a reason)
        rules = runtime.redaction.rules
        auditor.redact = lambda ws, value: redacted_copy(rules, ws, value)
    return auditor


async def record_host_change(runtime: Runtime, action: str, workspace: str, name: str) -> None:
    """An audit row for a change made on the host (``cadenza secrets set|rotate``): actor
    ``cli``, the operating-system user. ``memory://`` keeps nothing, so nothing is recorded."""
    if isinstance(runtime.store, MemoryStore):
        return
    entry = AuditEntry(
        at=time.time(),
        actor_type="cli",
        actor_id=getpass.getuser()[:40],
        actor_name=None,
        workspace_id=workspace or None,
        action=action,
        target_type="secret" if name else "secrets",
        target_id=name or "*",
        request_id=None,
        client_ip=None,
        outcome="ok",
    )
    await SqlAuditLog(runtime.database()).append(entry)
