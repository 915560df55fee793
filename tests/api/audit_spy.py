"""The API's audit log, watched: which rows were appended on their own, after their change,
rather than taken by the change's transaction (docs/audit.md, "Known gaps")."""

from __future__ import annotations

from typing import Any

from cadenza.application.audit_ports import AuditEntry, AuditLog, AuditQuery


class Appended:
    """The API's audit log, noting the rows appended on their own (no transaction took
    them): instance operations must not be among them."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.rows: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        self.rows.append(entry)
        await self.log.append(entry)

    async def page(self, q: AuditQuery) -> list[AuditEntry]:
        return await self.log.page(q)

    async def prune(self, before: float, limit: int) -> int:
        return await self.log.prune(before, limit)


def watch(app: Any) -> Appended:
    """Put an ``Appended`` around the audit log of the app's Auditor."""
    auditor = app.state.services.audit
    appended = Appended(auditor.log)
    auditor.log = appended
    return appended
