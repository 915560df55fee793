"""Workspace-scoped reads and definition versioning for the API (the ``Queries`` port)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.payloads import PLAIN, PayloadCodec
from cadenza.application.ports import InstanceRow, StoredDefinition
from cadenza.application.ports_api import (
    DefinitionConflict,
    FeedCursor,
    FeedEntry,
    InstanceFilter,
    TaskFilter,
)
from cadenza.domain.events import Event
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql import rows
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.faults import reading
from cadenza.infrastructure.sql.payload_rows import view_event, view_instance, view_task
from cadenza.infrastructure.sql.tables import definitions, events, feed, instances, tasks

_D = definitions.c


class SqlQueries:
    def __init__(self, engine: AsyncEngine, codec: PayloadCodec = PLAIN) -> None:
        self._engine = engine
        self._codec = codec  # payloads as the API shows them: offloaded ones as markers
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def _all(self, stmt: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
        async with reading(self._reader) as conn:
            return list((await conn.execute(stmt)).all())

    # ---- definitions ---------------------------------------------------------------------
    async def processes(self, ws: str) -> list[StoredDefinition]:
        newest = (
            sa.select(_D.process_id, sa.func.max(_D.version).label("v"))
            .where(_D.workspace_id == ws)
            .group_by(_D.process_id)
            .subquery()
        )
        stmt = (
            sa.select(definitions)
            .join(newest, sa.and_(_D.process_id == newest.c.process_id, _D.version == newest.c.v))
            .order_by(_D.process_id)
        )
        return [rows.definition(r) for r in await self._all(stmt)]

    async def versions(self, ws: str, process_id: str) -> list[StoredDefinition]:
        stmt = (
            sa.select(definitions)
            .where(_D.workspace_id == ws, _D.process_id == process_id)
            .order_by(_D.version.desc())
        )
        return [rows.definition(r) for r in await self._all(stmt)]

    async def definition(
        self, ws: str, process_id: str, version: int | None
    ) -> StoredDefinition | None:
        stmt = sa.select(definitions).where(_D.workspace_id == ws, _D.process_id == process_id)
        stmt = (
            stmt.order_by(_D.version.desc()).limit(1)
            if version is None
            else stmt.where(_D.version == version)
        )
        found = await self._all(stmt)
        return rows.definition(found[0]) if found else None

    async def save_draft(self, d: StoredDefinition) -> StoredDefinition:
        async with self._engine.begin() as conn:
            existing = (
                await conn.execute(
                    sa.select(definitions)
                    .where(_D.process_id == d.process_id)
                    .order_by(_D.version.desc())
                    .with_for_update()
                )
            ).all()
            if existing and existing[0].workspace_id != d.workspace_id:
                raise DefinitionConflict(
                    f"process id {d.process_id!r} is already in use; choose another id"
                )
            for r in existing:
                if r.content_hash == d.content_hash:
                    return rows.definition(r)
            values = {
                "content_hash": d.content_hash,
                "document": d.document,
                "created_at": d.created_at,
                "status": "draft",
            }
            if existing and existing[0].status == "draft":
                version = int(existing[0].version)
                await conn.execute(
                    definitions.update()
                    .where(_D.process_id == d.process_id, _D.version == version)
                    .values(values)
                )
            else:
                version = int(existing[0].version) + 1 if existing else 1
                await conn.execute(
                    definitions.insert().values(
                        process_id=d.process_id,
                        version=version,
                        workspace_id=d.workspace_id,
                        **values,
                    )
                )
            await write_pending(conn)  # the audit row commits with the draft
        return StoredDefinition(
            d.process_id, version, d.content_hash, "draft", d.document, d.created_at, d.workspace_id
        )

    async def set_status(self, ws: str, process_id: str, version: int, status: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                definitions.update()
                .where(_D.workspace_id == ws, _D.process_id == process_id, _D.version == version)
                .values(status=status)
            )
            if result.rowcount:
                await write_pending(conn)
            return bool(result.rowcount)

    # ---- instances and tasks -------------------------------------------------------------
    async def instances(self, ws: str, f: InstanceFilter) -> tuple[list[InstanceRow], str | None]:
        c = instances.c
        stmt = sa.select(instances).where(c.workspace_id == ws)
        if f.status:
            stmt = stmt.where(c.status == f.status)
        if f.process_id:
            stmt = stmt.where(c.process_id == f.process_id)
        if f.search:
            like = f.search.replace("%", "").replace("_", "") + "%"
            stmt = stmt.where(sa.or_(c.id.like(like), c.process_id.like(like)))
        if f.cursor:
            at, _, last_id = f.cursor.partition("|")
            stmt = stmt.where(
                sa.or_(c.created_at < float(at), sa.and_(c.created_at == float(at), c.id < last_id))
            )
        stmt = stmt.order_by(c.created_at.desc(), c.id.desc()).limit(f.limit + 1)
        found = [view_instance(self._codec, rows.instance(r)) for r in await self._all(stmt)]
        if len(found) <= f.limit:
            return found, None
        last = found[f.limit - 1]
        return found[: f.limit], f"{last.created_at!r}|{last.id}"

    async def instance(self, ws: str, instance_id: str) -> InstanceRow | None:
        c = instances.c
        found = await self._all(
            sa.select(instances).where(c.id == instance_id, c.workspace_id == ws)
        )
        return view_instance(self._codec, rows.instance(found[0])) if found else None

    async def instance_by_key(self, ws: str, key: str) -> str | None:
        c = instances.c
        found = await self._all(
            sa.select(c.id).where(c.idempotency_key == key, c.workspace_id == ws)
        )
        return str(found[0].id) if found else None

    async def journal(self, ws: str, instance_id: str) -> list[tuple[int, Event]] | None:
        if await self.instance(ws, instance_id) is None:
            return None
        stmt = sa.select(events).where(events.c.instance_id == instance_id).order_by(events.c.seq)
        codec = self._codec
        return [
            (int(r.seq), view_event(codec, r.type, instance_id, r.event_id, r.occurred_at, r.data))
            for r in await self._all(stmt)
        ]

    def _tasks(self, ws: str) -> sa.Select[Any]:
        return (
            sa.select(tasks, instances.c.process_id)
            .join(instances, instances.c.id == tasks.c.instance_id)
            .where(instances.c.workspace_id == ws)
        )

    async def tasks(self, ws: str, f: TaskFilter) -> list[JSONObject]:
        stmt = self._tasks(ws)
        if f.status:
            stmt = stmt.where(tasks.c.status == f.status)
        if f.instance_id:
            stmt = stmt.where(tasks.c.instance_id == f.instance_id)
        if f.node_type:
            stmt = stmt.where(tasks.c.node_type == f.node_type)
        stmt = stmt.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(f.limit)
        return [view_task(self._codec, rows.plain(dict(r._mapping))) for r in await self._all(stmt)]

    async def task(self, ws: str, task_id: str) -> JSONObject | None:
        found = await self._all(self._tasks(ws).where(tasks.c.id == task_id))
        return view_task(self._codec, rows.plain(dict(found[0]._mapping))) if found else None

    # ---- the feed ------------------------------------------------------------------------
    async def feed_head(self) -> FeedCursor:
        async with reading(self._reader) as conn:
            top = await conn.scalar(sa.select(sa.func.max(feed.c.id)))
        return FeedCursor(int(top or 0), 1 << 30)

    async def feed_start(self, instance_id: str) -> FeedCursor | None:
        async with reading(self._reader) as conn:
            first = await conn.scalar(
                sa.select(sa.func.min(feed.c.id)).where(feed.c.instance_id == instance_id)
            )
        return None if first is None else FeedCursor(int(first) - 1, 1 << 30)

    async def feed_after(self, cursor: FeedCursor | None, limit: int) -> list[FeedEntry]:
        if cursor is None:
            return []
        i = instances.c
        stmt = (
            sa.select(
                feed.c.id.label("feed_id"),
                i.workspace_id,
                i.process_id,
                events,
            )
            .select_from(feed)
            .join(instances, i.id == feed.c.instance_id)
            .join(
                events,
                sa.and_(
                    events.c.instance_id == feed.c.instance_id,
                    events.c.seq.between(feed.c.first_seq, feed.c.last_seq),
                ),
            )
            .where(
                sa.or_(
                    feed.c.id > cursor.feed_id,
                    sa.and_(feed.c.id == cursor.feed_id, events.c.seq > cursor.seq),
                )
            )
            .order_by(feed.c.id, events.c.seq)
            .limit(limit)
        )
        return [
            FeedEntry(
                int(r.feed_id),
                int(r.seq),
                r.workspace_id,
                r.process_id,
                view_event(self._codec, r.type, r.instance_id, r.event_id, r.occurred_at, r.data),
            )
            for r in await self._all(stmt)
        ]

    async def ping(self) -> None:
        async with reading(self._reader) as conn:
            await conn.execute(sa.text("SELECT 1"))
