"""The audit log: who changed what, when and from where.

``Auditor.change`` wraps a change. While it runs, the entry waits in a context variable; a SQL
store that performs the change takes it (``take_pending``) and inserts the audit row in the
*same transaction* as the change, so both commit or neither does. The engine takes it too,
when the change is a command it commits (``Engine.use_audit``): the row is saved in the
command's group-commit batch. When nothing took it (the memory store, a store without a
transaction handle), the entry is appended right after the change returned: that is the
documented gap (docs/audit.md). A change that raises leaves no row.

Summaries (``before``/``after``) go through ``scrub``: keys that name secrets are dropped, so a
value, password, token or hash never reaches the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field

from cadenza.application.audit_ports import (
    AuditEntry,
    AuditLog,
    AuditQuery,
    Origin,
)
from cadenza.application.ports import Clock
from cadenza.application.roles import Forbidden, Permission, Principal
from cadenza.domain.json import JSON, JSONObject

__all__ = [
    "NEW_ID",
    "ORIGIN",
    "AuditEntry",
    "AuditLog",
    "AuditQuery",
    "Auditor",
    "Origin",
    "Target",
    "audited",
    "created",
    "naming",
    "scrub",
    "take_pending",
]

# Set per request by the API's middleware (request id, client address); read by the Auditor.
ORIGIN: ContextVar[Origin | None] = ContextVar("cadenza_audit_origin", default=None)
# Keys never copied into a summary, at any depth (compared lower-case, as substrings).
SECRET_KEYS = ("password", "secret", "token", "value", "hash", "sealed", "credential", "api_key")
NEW_ID = "(new)"  # the target id of a create; the store that inserts the row puts the real id
MAX_SUMMARY_CHARS = 400  # a longer string in a summary is cut to this many characters


@dataclass
class _Pending:
    entry: AuditEntry
    taken: bool = False


_PENDING: ContextVar[_Pending | None] = ContextVar("cadenza_audit_pending", default=None)


def take_pending(new_id: str | None = None) -> AuditEntry | None:
    """The entry of the change in progress, at most once: a SQL store calls this inside the
    transaction that makes the change and inserts the row there. ``new_id``: the id of what
    the change created, for an entry whose target is ``NEW_ID``."""
    pending = _PENDING.get()
    if pending is None or pending.taken:
        return None
    pending.taken = True
    if new_id is not None:
        pending.entry = naming(pending.entry, new_id)
    return pending.entry


def naming(entry: AuditEntry, new_id: str) -> AuditEntry:
    """``entry`` with ``new_id`` as its target when its target is the ``NEW_ID`` of a create."""
    if entry.target_id != NEW_ID:
        return entry
    return dataclasses.replace(entry, target_id=new_id)


def created(new_id: str) -> None:
    """The change in progress created ``new_id``: an entry whose target is ``NEW_ID`` and that
    nothing took names it when it is appended after the change (a taken entry was named by
    the store that took it)."""
    pending = _PENDING.get()
    if pending is not None and not pending.taken:
        pending.entry = naming(pending.entry, new_id)


@dataclass(frozen=True)
class Target:
    """What a change acts on: ``("definition", "orders@3")``, ``("user", "<id>")``."""

    type: str
    id: str
    workspace_id: str | None = None  # None: the actor's workspace (or none for system rows)


def scrub(value: JSON) -> JSON:
    """``value`` without secret-looking keys, long strings cut (see ``SECRET_KEYS``)."""
    if isinstance(value, dict):
        return {
            k: scrub(v)
            for k, v in value.items()
            if not any(word in k.lower() for word in SECRET_KEYS)
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and len(value) > MAX_SUMMARY_CHARS:
        return value[:MAX_SUMMARY_CHARS] + "…"
    return value


def _summary(value: Mapping[str, JSON] | None) -> JSONObject | None:
    if value is None:
        return None
    out = scrub(dict(value))
    return out if isinstance(out, dict) else None


@dataclass
class Auditor:
    """Builds entries from the caller and the request, and appends them to the log."""

    log: AuditLog
    clock: Clock
    on_write: Callable[[str], None] = field(default=lambda action: None)  # metrics by action
    # PII: summaries pass the workspace's redaction rules (docs/pii.md); nothing is sealed
    redact: Callable[[str | None, JSONObject], JSONObject] = field(default=lambda ws, v: v)

    def entry(
        self,
        p: Principal | None,
        action: str,
        target: Target,
        *,
        before: Mapping[str, JSON] | None = None,
        after: Mapping[str, JSON] | None = None,
        outcome: str = "ok",
        actor_name: str | None = None,
    ) -> AuditEntry:
        origin = ORIGIN.get() or Origin()
        workspace = target.workspace_id
        if workspace is None and p is not None and target.type not in _SYSTEM_TARGETS:
            workspace = p.workspace_id
        return AuditEntry(
            at=self.clock.now(),
            actor_type="anonymous" if p is None else ("key" if p.key_id else "user"),
            actor_id=None if p is None else (p.key_id or p.user_id),
            actor_name=actor_name,
            workspace_id=workspace,
            action=action,
            target_type=target.type,
            target_id=target.id,
            request_id=origin.request_id,
            client_ip=origin.client_ip,
            outcome=outcome,
            before=self._redacted(workspace, _summary(before)),
            after=self._redacted(workspace, _summary(after)),
        )

    def _redacted(self, workspace: str | None, value: JSONObject | None) -> JSONObject | None:
        return None if value is None else self.redact(workspace, value)

    async def record(self, entry: AuditEntry) -> None:
        """Append an entry on its own (a failed login, a change with no transaction here)."""
        await self.log.append(entry)
        self.on_write(entry.action)

    @asynccontextmanager
    async def change(self, entry: AuditEntry) -> AsyncIterator[AuditEntry]:
        """Wrap a change: its SQL transaction takes the entry; else it is appended after."""
        pending = _Pending(entry)
        token = _PENDING.set(pending)
        try:
            yield entry
        finally:
            _PENDING.reset(token)
        if pending.taken:
            self.on_write(entry.action)
        else:
            await self.record(pending.entry)  # with the id ``created`` gave it

    def act(
        self,
        p: Principal | None,
        action: str,
        target: Target,
        *,
        before: Mapping[str, JSON] | None = None,
        after: Mapping[str, JSON] | None = None,
    ) -> AbstractAsyncContextManager[AuditEntry]:
        """``change`` of a new entry: ``async with auditor.act(p, "user.update", t): ...``."""
        return self.change(self.entry(p, action, target, before=before, after=after))

    async def query(self, p: Principal, q: AuditQuery) -> list[AuditEntry]:
        """A page for an admin: system admins see every row; a workspace admin only the rows
        of the workspace they act in (the scope is applied by the store's query)."""
        return await self.log.page(_scoped(p, q))


_SYSTEM_TARGETS = frozenset({"user", "workspace", "session", "mcp_tool"})


def _scoped(p: Principal, q: AuditQuery) -> AuditQuery:
    if p.is_system_admin:
        return dataclasses.replace(q, scope=None)
    if not p.can(Permission.MANAGE):
        raise Forbidden(f"role {p.role.value!r} lacks the 'manage' permission")
    if q.workspace_id not in (None, p.workspace_id):
        return dataclasses.replace(q, scope=p.workspace_id, workspace_id=p.workspace_id, limit=0)
    return dataclasses.replace(q, scope=p.workspace_id)


def audited(
    auditor: Auditor | None,
    p: Principal | None,
    action: str,
    target: Target,
    *,
    before: Mapping[str, JSON] | None = None,
    after: Mapping[str, JSON] | None = None,
) -> AbstractAsyncContextManager[AuditEntry | None]:
    """``auditor.act(...)``, or nothing when no audit log is wired (engine-only processes)."""
    if auditor is None:
        return nullcontext()
    return auditor.act(p, action, target, before=before, after=after)
