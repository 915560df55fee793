"""The audit log's records and its port (adapters: SQL ``audit`` table, in-memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cadenza.domain.json import JSONObject

MAX_PAGE = 500  # rows per page of ``GET /audit`` and per read of the export


@dataclass(frozen=True)
class Origin:
    """Where a request came from."""

    request_id: str | None = None
    client_ip: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One change (or sign-in attempt). ``id`` is given by the log on append: it orders rows."""

    at: float
    actor_type: str  # user | key | anonymous
    actor_id: str | None
    actor_name: str | None  # the attempted username of a login
    workspace_id: str | None  # None: a system-wide row (users, workspaces, logins)
    action: str  # "<family>.<verb>", e.g. definition.publish
    target_type: str
    target_id: str
    request_id: str | None
    client_ip: str | None
    outcome: str  # ok | failed
    before: JSONObject | None = None
    after: JSONObject | None = None
    id: int | None = None

    @property
    def family(self) -> str:
        return self.action.partition(".")[0]


@dataclass(frozen=True)
class AuditQuery:
    """Filters of a read; ``scope`` is the tenant check (None: every workspace, system
    admins only) and is set by ``Auditor.query``, never by the caller."""

    scope: str | None
    actor: str | None = None  # an actor id (user id or key id)
    action: str | None = None  # a prefix: "definition." or "definition.publish"
    target_type: str | None = None
    target_id: str | None = None
    workspace_id: str | None = None
    since: float | None = None  # at >= since
    until: float | None = None  # at < until
    before_id: int | None = None  # newest first: rows with a smaller id (the cursor)
    after_id: int | None = None  # oldest first: rows with a larger id (the export)
    limit: int = 100


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...

    async def page(self, q: AuditQuery) -> list[AuditEntry]:
        """Rows matching ``q``: newest first, or oldest first when ``after_id`` is set."""
        ...

    async def prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` of the oldest rows written before ``before`` (the audit
        retention of the retention job); how many were deleted."""
        ...
