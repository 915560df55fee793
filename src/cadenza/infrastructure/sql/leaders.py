"""``SqlLeaderLeases``: leader leases in the ``leaders`` table (SQLite, PostgreSQL, and any
dialect with standard SQL: no dialect-specific upsert).

Taking a lease is one conditional UPDATE ("free, or mine"), which the database serializes on
the row: of two racing standbys the second re-reads the row the first wrote and matches
nothing. The first lease of a name is an INSERT; the loser of that race meets the primary key
(``IntegrityError``) and reads the winner's row. Each write runs shielded: a caller cancelled
(by its timeout, at shutdown) must not cut a SQLite transaction between BEGIN IMMEDIATE and
its end, which could leave the write lock with a connection nobody closes; the store waits
for such a write before it closes (``shielded``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cadenza.application.ports_leases import RELEASED_AT, LeaseView
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.tables import leaders

_L = leaders.c


class SqlLeaderLeases:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def try_acquire(self, name: str, holder: str, now: float, lease_s: float) -> LeaseView:
        return await shielded(self._engine, self._try_acquire(name, holder, now, lease_s))

    async def renew(self, name: str, holder: str, now: float, lease_s: float) -> bool:
        stmt = (
            leaders.update()
            .where(_L.name == name, _L.holder == holder, _L.expires_at > now)
            .values(expires_at=now + lease_s)
        )
        return await shielded(self._engine, self._update(stmt)) == 1

    async def release(self, name: str, holder: str) -> None:
        stmt = (
            leaders.update()
            .where(_L.name == name, _L.holder == holder)
            .values(expires_at=RELEASED_AT)
        )
        await shielded(self._engine, self._update(stmt))

    async def _try_acquire(self, name: str, holder: str, now: float, lease_s: float) -> LeaseView:
        kept = sa.and_(_L.holder == holder, _L.expires_at > now)
        take = (
            leaders.update()
            .where(_L.name == name, sa.or_(_L.holder == holder, _L.expires_at <= now))
            # acquired_at first: MySQL evaluates single-table SET clauses left to right, over
            # the values already assigned; standard SQL reads the old row for every clause
            .ordered_values(
                (_L.acquired_at, sa.case((kept, _L.acquired_at), else_=now)),
                (_L.holder, holder),
                (_L.expires_at, now + lease_s),
            )
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(take)).rowcount == 1:
                return await _read(conn, name)
            found = await _find(conn, name)
        if found is not None:
            return found
        first = leaders.insert().values(
            name=name, holder=holder, expires_at=now + lease_s, acquired_at=now
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(first)
        except IntegrityError:  # another process took the first lease of this name
            pass
        async with self._engine.begin() as conn:
            return await _read(conn, name)

    async def _update(self, stmt: sa.Update) -> int:
        async with self._engine.begin() as conn:
            return int((await conn.execute(stmt)).rowcount)


async def _find(conn: AsyncConnection, name: str) -> LeaseView | None:
    row = (await conn.execute(sa.select(leaders).where(_L.name == name))).first()
    return None if row is None else _view(row)


async def _read(conn: AsyncConnection, name: str) -> LeaseView:
    found = await _find(conn, name)
    if found is None:  # rows of this table are never deleted
        raise RuntimeError(f"leader lease {name!r} vanished")
    return found


def _view(row: Any) -> LeaseView:
    return LeaseView(row.name, row.holder, float(row.expires_at), float(row.acquired_at))
