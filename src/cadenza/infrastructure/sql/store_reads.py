"""The read side of the SQL store (the ``Store`` port's queries): instances, tasks and the
journal with their payloads decoded, and the counts the metrics read. Every read goes through
a read-only connection of the store's pool; a store that is away raises ``StoreUnavailable``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.payloads import PayloadCodec
from cadenza.application.ports import InstanceRow
from cadenza.domain.events import Event
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql import rows
from cadenza.infrastructure.sql.faults import reading
from cadenza.infrastructure.sql.payload_rows import decode_event, decode_instance, decode_task
from cadenza.infrastructure.sql.tables import events, instances, tasks


class SqlReads:
    """The queries of ``SqlStore`` (its base): given its read-only engine and its codec."""

    reader: AsyncEngine  # read-only connections (``database.READ_ONLY``), the store's pool
    codec: PayloadCodec  # stored payloads are decoded on every read

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        async with reading(self.reader) as conn:
            r = (
                await conn.execute(sa.select(instances).where(instances.c.id == instance_id))
            ).first()
            found = None if r is None else rows.instance(r)
        return None if found is None else await decode_instance(self.codec, found)

    async def list_instances(
        self, limit: int = 100, status: str | None = None
    ) -> list[InstanceRow]:
        stmt = sa.select(instances).order_by(instances.c.created_at.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(instances.c.status == status)
        async with reading(self.reader) as conn:
            found = [rows.instance(r) for r in await conn.execute(stmt)]
        return [await decode_instance(self.codec, r) for r in found]

    async def count_instances(self) -> dict[str, int]:
        stmt = sa.select(instances.c.status, sa.func.count()).group_by(instances.c.status)
        async with reading(self.reader) as conn:
            return {str(s): int(n) for s, n in await conn.execute(stmt)}

    async def queue_depth(self) -> int:
        """Tasks scheduled and not yet leased (the ``cadenza_task_queue_depth`` gauge)."""
        stmt = sa.select(sa.func.count()).select_from(tasks).where(tasks.c.status == "scheduled")
        async with reading(self.reader) as conn:
            return int(await conn.scalar(stmt) or 0)

    async def unfinished_instances(self) -> list[str]:
        stmt = sa.select(instances.c.id).where(instances.c.status == "running")
        async with reading(self.reader) as conn:
            return [str(i) for i in (await conn.execute(stmt)).scalars()]

    async def journal(self, instance_id: str) -> list[tuple[int, Event]]:
        stmt = sa.select(events).where(events.c.instance_id == instance_id).order_by(events.c.seq)
        async with reading(self.reader) as conn:
            found = list(await conn.execute(stmt))
        codec = self.codec
        return [
            (
                int(r.seq),
                await decode_event(codec, r.type, instance_id, r.event_id, r.occurred_at, r.data),
            )
            for r in found
        ]

    async def task_rows(self, instance_id: str) -> list[JSONObject]:
        stmt = (
            sa.select(tasks).where(tasks.c.instance_id == instance_id).order_by(tasks.c.created_at)
        )
        async with reading(self.reader) as conn:
            found = [rows.plain(dict(r._mapping)) for r in await conn.execute(stmt)]
        return [await decode_task(self.codec, t) for t in found]
