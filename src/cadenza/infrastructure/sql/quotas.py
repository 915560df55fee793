"""``SqlQuotaStore``: workspace limits and quota counters (``workspace_quotas``,
``quota_starts``, ``quota_spend``), portable SQL only (no dialect-specific upsert).

A counter is taken with one conditional UPDATE (``starts < limit``; ``tokens + n <= limit``),
which the database serializes on the row: of two processes racing for the last slot, the
second re-reads the row the first wrote and matches nothing. A counter's first row is an
INSERT whose loser meets the primary key and updates instead. A reservation updates the day's
and the month's rows in one transaction: both fit or neither is taken. Spend rows are made at
zero by the first turn of their day or month; after that a turn costs one transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cadenza.application.ports_quotas import (
    LIMIT_NAMES,
    BudgetLimits,
    QuotaLimits,
    Reservation,
    Spend,
)
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.tables import (
    instances,
    quota_holds,
    quota_spend,
    quota_starts,
    workspace_quotas,
)

_Q, _S, _P, _H = workspace_quotas.c, quota_starts.c, quota_spend.c, quota_holds.c
_KEEP_MINUTES = 2  # starts rows older than this many minutes are deleted as new ones come


class _Full(Exception):
    """A conditional update matched nothing: roll the transaction back."""


class _Missing(Exception):
    """A period's row does not exist yet: roll back, make it, try again."""

    def __init__(self, period: str) -> None:
        super().__init__(period)
        self.period = period


class SqlQuotaStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def _one(self, stmt: sa.Select[Any]) -> Any:
        async with self._reader.connect() as conn:
            return (await conn.execute(stmt)).first()

    # ---- limits ------------------------------------------------------------------------------
    async def limits(self, workspace_id: str) -> QuotaLimits | None:
        row = await self._one(sa.select(workspace_quotas).where(_Q.workspace_id == workspace_id))
        if row is None:
            return None
        values = {name: getattr(row, name) for name in LIMIT_NAMES}
        for name in ("cost_per_day", "cost_per_month"):
            values[name] = None if values[name] is None else float(values[name])
        return QuotaLimits(**values)

    async def set_limits(self, workspace_id: str, limits: QuotaLimits, now: float) -> None:
        values = {name: getattr(limits, name) for name in LIMIT_NAMES}
        update = (
            workspace_quotas.update()
            .where(_Q.workspace_id == workspace_id)
            .values(updated_at=now, **values)
        )
        insert = workspace_quotas.insert().values(
            workspace_id=workspace_id, updated_at=now, **values
        )
        await shielded(self._engine, self._upsert(update, insert))

    # ---- starts ------------------------------------------------------------------------------
    async def running(self, workspace_id: str) -> int:
        stmt = (
            sa.select(sa.func.count())
            .select_from(instances)
            .where(instances.c.status == "running", instances.c.workspace_id == workspace_id)
        )
        row = await self._one(stmt)
        return int(row[0] or 0)

    async def admit_running(
        self, workspace_id: str, limit: int, hold: str, until: float, now: float
    ) -> int | None:
        return await shielded(
            self._engine, self._admit_running(workspace_id, limit, hold, until, now)
        )

    async def _admit_running(
        self, workspace_id: str, limit: int, hold: str, until: float, now: float
    ) -> int | None:
        # the workspace's limits row is the lock admissions take in turn (FOR UPDATE; SQLite:
        # BEGIN IMMEDIATE already serializes writers); one of all-null limits is no limit
        insert = workspace_quotas.insert().values(workspace_id=workspace_id, updated_at=now)
        if (
            await self._one(sa.select(_Q.workspace_id).where(_Q.workspace_id == workspace_id))
            is None
        ):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert)
            except IntegrityError:
                pass
        mine = _H.workspace_id == workspace_id
        running = (
            sa.select(sa.func.count())
            .select_from(instances)
            .where(instances.c.status == "running", instances.c.workspace_id == workspace_id)
        )
        async with self._engine.begin() as conn:
            lock = sa.select(_Q.workspace_id).where(_Q.workspace_id == workspace_id)
            await conn.execute(lock.with_for_update())
            await conn.execute(quota_holds.delete().where(mine, _H.until <= now))
            held = sa.select(sa.func.count()).select_from(quota_holds).where(mine)
            count = int((await conn.execute(running)).scalar_one()) + int(
                (await conn.execute(held)).scalar_one()
            )
            if count >= limit:
                return count
            await conn.execute(
                quota_holds.insert().values(workspace_id=workspace_id, hold=hold, until=until)
            )
        return None

    async def release_running(self, workspace_id: str, hold: str) -> None:
        await shielded(self._engine, self._release(workspace_id, hold))

    async def _release(self, workspace_id: str, hold: str) -> None:
        stmt = quota_holds.delete().where(_H.workspace_id == workspace_id, _H.hold == hold)
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def starts(self, workspace_id: str, window: int) -> int:
        stmt = sa.select(_S.starts).where(_S.workspace_id == workspace_id, _S.minute == window)
        row = await self._one(stmt)
        return 0 if row is None else int(row[0])

    async def take_start(self, workspace_id: str, window: int, limit: int | None) -> int | None:
        return await shielded(self._engine, self._take_start(workspace_id, window, limit))

    async def _take_start(self, workspace_id: str, window: int, limit: int | None) -> int | None:
        if limit is not None and limit < 1:
            return None
        where = [_S.workspace_id == workspace_id, _S.minute == window]
        take = quota_starts.update().where(*where).values(starts=_S.starts + 1)
        if limit is not None:
            take = take.where(_S.starts < limit)
        for _ in range(2):
            async with self._engine.begin() as conn:
                if (await conn.execute(take)).rowcount == 1:
                    return int((await conn.execute(sa.select(_S.starts).where(*where))).one()[0])
                if (await conn.execute(sa.select(_S.starts).where(*where))).first() is not None:
                    return None  # the window's row exists and is full
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        quota_starts.delete().where(
                            _S.workspace_id == workspace_id, _S.minute < window - _KEEP_MINUTES
                        )
                    )
                    await conn.execute(
                        quota_starts.insert().values(
                            workspace_id=workspace_id, minute=window, starts=1
                        )
                    )
                return 1
            except IntegrityError:  # another process counted the window's first start
                continue
        return None

    # ---- spend -------------------------------------------------------------------------------
    async def spent(self, workspace_id: str, day: str, month: str) -> tuple[Spend, Spend]:
        stmt = sa.select(_P.period, _P.tokens, _P.cost).where(
            _P.workspace_id == workspace_id, _P.period.in_([day, month])
        )
        async with self._reader.connect() as conn:
            rows = {r.period: Spend(int(r.tokens), float(r.cost)) for r in await conn.execute(stmt)}
        return rows.get(day, Spend()), rows.get(month, Spend())

    async def reserve(self, r: Reservation, within: BudgetLimits) -> bool:
        return await shielded(self._engine, self._reserve(r, within))

    async def _reserve(self, r: Reservation, within: BudgetLimits) -> bool:
        periods = (
            (r.day, within.tokens_per_day, within.cost_per_day),
            (r.month, within.tokens_per_month, within.cost_per_month),
        )
        for _ in range(3):  # the day's and the month's rows are made by their first turn
            try:
                async with self._engine.begin() as conn:
                    for period, tokens, cost in periods:
                        stmt = self._added(r, period)
                        if tokens is not None:
                            stmt = stmt.where(_P.tokens + r.tokens <= tokens)
                        if cost is not None:
                            stmt = stmt.where(_P.cost + r.cost <= cost)
                        if (await conn.execute(stmt)).rowcount != 1:
                            if await _exists(conn, r.workspace_id, period):
                                raise _Full
                            raise _Missing(period)
                return True
            except _Full:
                return False
            except _Missing as missing:
                await self._create(r.workspace_id, missing.period)
        return False

    async def add(self, r: Reservation) -> None:
        await shielded(self._engine, self._add(r))

    async def _add(self, r: Reservation) -> None:
        async with self._engine.begin() as conn:
            missing = [
                period
                for period in (r.day, r.month)
                if (await conn.execute(self._added(r, period))).rowcount != 1
                and not await _exists(conn, r.workspace_id, period)
            ]
        for period in missing:  # the first turn of a day or a month: make its row, add to it
            await self._create(r.workspace_id, period)
            async with self._engine.begin() as conn:
                await conn.execute(self._added(r, period))

    @staticmethod
    def _added(r: Reservation, period: str) -> sa.Update:
        return (
            quota_spend.update()
            .where(_P.workspace_id == r.workspace_id, _P.period == period)
            .values(tokens=_P.tokens + r.tokens, cost=_P.cost + r.cost)
        )

    async def _create(self, workspace_id: str, period: str) -> None:
        """A period's row at zero (another process may have made it first)."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    quota_spend.insert().values(
                        workspace_id=workspace_id, period=period, tokens=0, cost=0.0
                    )
                )
        except IntegrityError:
            pass

    async def _upsert(self, update: sa.Update, insert: sa.Insert) -> None:
        for _ in range(2):
            async with self._engine.begin() as conn:
                if (await conn.execute(update)).rowcount:
                    await write_pending(conn)  # the audit row commits with the change
                    return
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(insert)
                    await write_pending(conn)
                return
            except IntegrityError:
                continue


async def _exists(conn: AsyncConnection, workspace_id: str, period: str) -> bool:
    stmt = sa.select(_P.period).where(_P.workspace_id == workspace_id, _P.period == period)
    return (await conn.execute(stmt)).first() is not None
