"""``MemoryAuditLog``: the in-process ``AuditLog`` (tests, and the reference of the port)."""

from __future__ import annotations

from dataclasses import replace

from cadenza.application.audit_ports import MAX_PAGE, AuditEntry, AuditQuery


def matches(e: AuditEntry, q: AuditQuery) -> bool:
    """Whether ``e`` passes every filter of ``q`` (the scope included)."""
    assert e.id is not None
    checks = (
        q.scope is None or e.workspace_id == q.scope,
        q.workspace_id is None or e.workspace_id == q.workspace_id,
        q.actor is None or e.actor_id == q.actor,
        not q.action or e.action.startswith(q.action),
        q.target_type is None or e.target_type == q.target_type,
        q.target_id is None or e.target_id == q.target_id,
        q.since is None or e.at >= q.since,
        q.until is None or e.at < q.until,
        q.before_id is None or e.id < q.before_id,
        q.after_id is None or e.id > q.after_id,
    )
    return all(checks)


class MemoryAuditLog:
    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        self.rows.append(replace(entry, id=len(self.rows) + 1))

    async def page(self, q: AuditQuery) -> list[AuditEntry]:
        limit = max(0, min(q.limit, MAX_PAGE))
        found = [e for e in self.rows if matches(e, q)]
        if q.after_id is None:
            found.reverse()
        return found[:limit]

    async def prune(self, before: float, limit: int) -> int:
        due = [e.id for e in self.rows if e.at < before][: max(0, limit)]
        self.rows = [e for e in self.rows if e.id not in due]
        return len(due)
