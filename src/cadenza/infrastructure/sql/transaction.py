"""One advance transaction: row locks on PostgreSQL and MySQL; SQLite's BEGIN IMMEDIATE locks
the file."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.payloads import PLAIN, PayloadCodec
from cadenza.application.ports import Changes, InstanceHeader, LeaseInfo, StoredDefinition, Timer
from cadenza.domain.events import Event
from cadenza.infrastructure.sql import rows
from cadenza.infrastructure.sql.audit import append_entries
from cadenza.infrastructure.sql.payload_rows import decode_event
from cadenza.infrastructure.sql.tables import events, instances, tasks, timers

CHUNK = 500  # ids per IN (...) list


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


class SqlTransaction:
    def __init__(
        self,
        conn: AsyncConnection,
        row_locks: bool,
        versions: dict[tuple[str, int], StoredDefinition] | None = None,
        codec: PayloadCodec = PLAIN,
    ) -> None:
        self.conn = conn
        self._codec = codec
        self._pg = row_locks  # SELECT ... FOR UPDATE
        self._definitions = rows.SeenDefinitions(versions if versions is not None else {})

    async def lock_instances(self, ids: Sequence[str]) -> dict[str, InstanceHeader]:
        out: dict[str, InstanceHeader] = {}
        for chunk in _chunks(sorted(ids)):
            stmt = (
                sa.select(
                    instances.c.id,
                    instances.c.process_id,
                    instances.c.version,
                    instances.c.seq,
                    instances.c.trace_context,
                )
                .where(instances.c.id.in_(chunk))
                .order_by(instances.c.id)
            )
            if self._pg:
                stmt = stmt.with_for_update()
            for r in await self.conn.execute(stmt):
                out[r.id] = InstanceHeader(
                    r.id, r.process_id, int(r.version), int(r.seq), r.trace_context
                )
        return out

    async def events_after(self, instance_id: str, seq: int) -> list[Event]:
        stmt = (
            sa.select(events)
            .where(events.c.instance_id == instance_id, events.c.seq > seq)
            .order_by(events.c.seq)
        )
        codec = self._codec
        return [
            await decode_event(codec, r.type, instance_id, r.event_id, r.occurred_at, r.data)
            for r in await self.conn.execute(stmt)
        ]

    async def lock_tasks(self, task_ids: Sequence[str]) -> dict[str, LeaseInfo]:
        out: dict[str, LeaseInfo] = {}
        for chunk in _chunks(sorted(task_ids)):
            stmt = sa.select(*rows.LEASE_COLUMNS).where(tasks.c.id.in_(chunk)).order_by(tasks.c.id)
            if self._pg:
                stmt = stmt.with_for_update()
            for r in await self.conn.execute(stmt):
                info = rows.lease(r)
                out[info.task_id] = info
        return out

    async def definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        return await self._definitions.get(
            process_id, version, lambda: rows.fetch_definition(self.conn, process_id, version)
        )

    async def instance_by_idempotency_key(self, key: str) -> str | None:
        stmt = sa.select(instances.c.id).where(instances.c.idempotency_key == key)
        found = await self.conn.scalar(stmt)
        return None if found is None else str(found)

    async def timers_for(self, instance_id: str) -> list[Timer]:
        stmt = sa.select(timers).where(timers.c.instance_id == instance_id)
        return [rows.timer(r) for r in await self.conn.execute(stmt)]

    async def save(self, changes: Changes) -> None:
        await rows.save(self.conn, changes, self._codec)
        await append_entries(self.conn, changes.audit)  # the batch's audit rows, with it
