"""``Store.claim_timers`` on SQL: due timers marked as taken by one sweeper for a while.

Every worker's sweeper looks for due timers; without a claim each of them fired the same ones
(the losers' commits met a deleted timer or waited for the instance's row lock). A claim sets
``claimed_until`` on the rows it returns; the others skip a row until then:

- PostgreSQL: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``, one
  statement (a row another claim holds is skipped, not waited for);
- MySQL/MariaDB: no ``UPDATE ... RETURNING``, and no UPDATE whose subquery reads its own
  table: ``SELECT ... FOR UPDATE SKIP LOCKED``, then the UPDATE of those ids, in one
  transaction (as ``mysql.claim`` takes tasks);
- SQLite: the same single statement as PostgreSQL without the lock clause; the file's write
  lock (``BEGIN IMMEDIATE``) makes one claim at a time.

``claimed_by`` is the claimer's lease holder (``owner/incarnation``): a worker restarted with
the same identity releases its earlier incarnations' claims with their leases
(``release_previous``) instead of waiting for them to end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.ports import Timer
from cadenza.infrastructure.sql.tables import timers

_COLUMNS = (timers.c.id, timers.c.instance_id, timers.c.task_id, timers.c.kind, timers.c.fire_at)


def _due(now: float, limit: int, *columns: sa.Column[Any]) -> sa.Select[Any]:
    unclaimed = sa.or_(timers.c.claimed_until.is_(None), timers.c.claimed_until <= now)
    return (
        sa.select(*columns)
        .where(timers.c.fire_at <= now, unclaimed)
        .order_by(timers.c.fire_at, timers.c.id)
        .limit(max(limit, 0))
    )


def claim_statement(
    holder: str, now: float, limit: int, claim_s: float, skip_locked: bool
) -> sa.Update:
    """The one-statement claim (PostgreSQL with ``skip_locked``, SQLite without)."""
    pick = _due(now, limit, timers.c.id)
    if skip_locked:
        pick = pick.with_for_update(skip_locked=True)
    return (
        timers.update()
        .where(timers.c.id.in_(pick.scalar_subquery()))
        .values(claimed_until=now + claim_s, claimed_by=holder)
        .returning(*_COLUMNS)
    )


async def claim_mysql(
    conn: AsyncConnection, holder: str, now: float, limit: int, claim_s: float
) -> list[Timer]:
    """MySQL's claim: the locking read, then the update (inside the caller's transaction)."""
    picked = await conn.execute(_due(now, limit, *_COLUMNS).with_for_update(skip_locked=True))
    found = [tuple(r) for r in picked]
    if found:
        await conn.execute(
            timers.update()
            .where(timers.c.id.in_([r[0] for r in found]))
            .values(claimed_until=now + claim_s, claimed_by=holder)
        )
    return in_fire_order(found)


def release_statement(earlier: sa.ColumnElement[bool]) -> sa.Update:
    """Give up the claims ``earlier`` selects (by ``claimed_by``): a restarted worker's
    previous incarnations fire nothing more; their timers are claimable at once."""
    return timers.update().where(earlier).values(claimed_until=None, claimed_by=None)


def in_fire_order(found: Iterable[Sequence[Any]]) -> list[Timer]:
    """Rows of the claimed columns as timers, by ``fire_at`` (RETURNING keeps no order)."""
    out = [Timer(str(i), str(iid), task, str(kind), float(at)) for i, iid, task, kind, at in found]
    out.sort(key=lambda t: (t.fire_at, t.id))
    return out
