"""The outbox's relay statements (``Store.relay_outbox``): take rows in id order, publish
them while holding them, delete them; one transaction, so a failed publish leaves them.

Several relays (one per process) share the table. On PostgreSQL and MySQL each takes rows
with ``FOR UPDATE SKIP LOCKED``; a relay that finds older rows held by another steps back
(``None``) instead of publishing newer ones first, which keeps events of one instance in
order on the bus. On SQLite the transaction holds the database's write lock (``BEGIN
IMMEDIATE``): one relay at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.ports import OutboxPublish, OutboxRow
from cadenza.infrastructure.sql.tables import outbox

CHUNK = 500  # ids per DELETE ... IN (...)


async def relay(conn: AsyncConnection, limit: int, publish: OutboxPublish) -> int | None:
    take = sa.select(outbox).order_by(outbox.c.id).limit(limit)
    shared = conn.dialect.name != "sqlite"
    if shared:
        take = take.with_for_update(skip_locked=True)
    taken = [
        OutboxRow(r.instance_id, int(r.seq), r.type, r.data, float(r.created_at), int(r.id))
        for r in await conn.execute(take)
    ]
    if shared:
        oldest = await conn.scalar(sa.select(sa.func.min(outbox.c.id)))
        if oldest is not None and (not taken or int(oldest) < taken[0].id):
            return None  # another relay holds older rows: it publishes them first
    if not taken:
        return 0
    await publish(taken)
    ids = [r.id for r in taken]
    for i in range(0, len(ids), CHUNK):
        await conn.execute(outbox.delete().where(outbox.c.id.in_(ids[i : i + CHUNK])))
    return len(taken)


async def backlog(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)
