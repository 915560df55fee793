"""``SqlAuditLog``: the ``audit`` table (the ``AuditLog`` port), and ``write_pending``, which
a store calls inside the transaction of a change to commit the change's audit row with it
(the engine's batches write theirs, ``Changes.audit``, with ``append_entries`` or, on the
SQLite fast path, ``sqlite_writer``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cadenza.application.audit import take_pending
from cadenza.application.audit_ports import MAX_PAGE, AuditEntry, AuditQuery
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import audit

_C = audit.c
_LENGTHS = {"actor_name": 80, "target_id": 200, "request_id": 64, "client_ip": 64}


def entry_values(e: AuditEntry) -> dict[str, Any]:
    values = {k: v for k, v in e.__dict__.items() if k != "id"}
    # bounded columns: an over-long value is cut rather than refused (the change happened)
    for name, length in _LENGTHS.items():
        text = values[name]
        if isinstance(text, str):
            values[name] = text[:length]
    return values


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        at=r.at,
        actor_type=r.actor_type,
        actor_id=r.actor_id,
        actor_name=r.actor_name,
        workspace_id=r.workspace_id,
        action=r.action,
        target_type=r.target_type,
        target_id=r.target_id,
        request_id=r.request_id,
        client_ip=r.client_ip,
        outcome=r.outcome,
        before=r.before,
        after=r.after,
        id=r.id,
    )


async def write_pending(conn: AsyncConnection, new_id: str | None = None) -> None:
    """Insert the audit row of the change in progress (if any) on ``conn``, inside the
    change's own transaction; ``new_id`` is the id of a row the change created."""
    entry = take_pending(new_id)
    if entry is not None:
        await conn.execute(audit.insert().values(**entry_values(entry)))


async def append_entry(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Insert ``entry`` on ``conn``: a row a background job writes with its own change."""
    await conn.execute(audit.insert().values(**entry_values(entry)))


async def append_entries(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
    """Insert ``entries`` on ``conn`` (an engine batch's, in its transaction)."""
    if entries:
        await conn.execute(audit.insert(), [entry_values(e) for e in entries])


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(q: AuditQuery) -> list[sa.ColumnElement[bool]]:
    """The filters of ``q``; the tenant scope first, always applied when set."""
    out: list[sa.ColumnElement[bool]] = []
    if q.scope is not None:
        out.append(_C.workspace_id == q.scope)
    if q.workspace_id is not None:
        out.append(_C.workspace_id == q.workspace_id)
    if q.actor is not None:
        out.append(_C.actor_id == q.actor)
    if q.action:
        out.append(_C.action.like(_escape_like(q.action) + "%", escape="\\"))
    if q.target_type is not None:
        out.append(_C.target_type == q.target_type)
    if q.target_id is not None:
        out.append(_C.target_id == q.target_id)
    if q.since is not None:
        out.append(_C.at >= q.since)
    if q.until is not None:
        out.append(_C.at < q.until)
    if q.before_id is not None:
        out.append(_C.id < q.before_id)
    if q.after_id is not None:
        out.append(_C.id > q.after_id)
    return out


class SqlAuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def append(self, entry: AuditEntry) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(audit.insert().values(**entry_values(entry)))

    async def page(self, q: AuditQuery) -> list[AuditEntry]:
        limit = max(0, min(q.limit, MAX_PAGE))
        if limit == 0:
            return []
        order = _C.id.asc() if q.after_id is not None else _C.id.desc()
        stmt = sa.select(audit).where(*where(q)).order_by(order).limit(limit)
        async with self._reader.connect() as conn:
            return [_entry(r) for r in (await conn.execute(stmt)).all()]

    async def prune(self, before: float, limit: int) -> int:
        # ids first: MariaDB refuses LIMIT inside an IN subquery
        oldest = sa.select(_C.id).where(_C.at < before).order_by(_C.id).limit(max(0, limit))
        async with self._engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(oldest)).all()]
            if ids:
                await conn.execute(audit.delete().where(_C.id.in_(ids)))
        return len(ids)
