"""A group commit's writes on SQLite, in one hop to the driver's thread.

aiosqlite runs every statement on its connection's thread and wakes the event loop once per
statement; through SQLAlchemy each also pays for compiling and per-row bind processing. A batch
writes up to eight statements. Here they are prepared on the loop (plain tuples, each JSON value
encoded once) and run together on the connection's thread with ``sqlite3``'s ``executemany``,
inside the transaction that SQLAlchemy began (``BEGIN IMMEDIATE``) on the same connection: the
commit or rollback stays SQLAlchemy's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.ports import Changes
from cadenza.infrastructure.sql import rows
from cadenza.infrastructure.sql.tables import events, feed, instances, tasks, timers

Statement = tuple[str, list[tuple[object, ...]]]


def _encoder(
    table: sa.Table, columns: Sequence[str]
) -> Callable[[dict[str, object]], tuple[object, ...]]:
    """Row dict -> parameter tuple in ``columns`` order; JSON columns encoded as SQLAlchemy's
    ``JSON`` type stores them (``None`` as the JSON ``null``, as with ``none_as_null=False``)."""
    is_json = [isinstance(table.c[c].type, sa.JSON) for c in columns]
    dumps = json.dumps

    def encode(values: dict[str, object]) -> tuple[object, ...]:
        return tuple(
            dumps(values[c]) if j else values[c] for c, j in zip(columns, is_json, strict=True)
        )

    return encode


def _insert(table: sa.Table, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    # identifiers come from our own table definitions, values are bound: no user text here
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def _update(table: sa.Table, columns: Sequence[str]) -> str:
    sets = ", ".join(f"{c} = ?" for c in columns)
    return f"UPDATE {table.name} SET {sets} WHERE id = ?"  # noqa: S608


class _Kind:
    """One kind of write: its SQL and how a row dict becomes its parameters."""

    def __init__(self, table: sa.Table, columns: Sequence[str], sql: str, by_id: bool) -> None:
        self.sql = sql
        self._encode = _encoder(table, columns)
        self._by_id = by_id

    def statement(self, values: Iterable[dict[str, object]]) -> Statement:
        if self._by_id:
            return self.sql, [(*self._encode(v), v["id"]) for v in values]
        return self.sql, [self._encode(v) for v in values]


def _inserting(table: sa.Table, columns: Sequence[str]) -> _Kind:
    return _Kind(table, columns, _insert(table, columns), by_id=False)


def _updating(table: sa.Table, columns: Sequence[str]) -> _Kind:
    return _Kind(table, columns, _update(table, columns), by_id=True)


_INSTANCE_COLUMNS = (*rows.INSTANCE_COLUMNS, "idempotency_key")
_NEW_INSTANCES = _inserting(instances, _INSTANCE_COLUMNS)
_UPDATED_INSTANCES = _updating(instances, rows.INSTANCE_STATE)
_NEW_TASKS = _inserting(tasks, rows.TASK_COLUMNS)
_LEASED_TASKS = _updating(tasks, rows.TASK_STATE + rows.TASK_LEASE)
_UPDATED_TASKS = _updating(tasks, rows.TASK_STATE)
_EVENTS = _inserting(events, rows.EVENT_COLUMNS)
_FEED = _inserting(feed, rows.FEED_COLUMNS)
_TIMERS = _inserting(timers, rows.TIMER_COLUMNS)
_DELETE_TIMER = f"DELETE FROM {timers.name} WHERE id = ?"  # noqa: S608


def statements(changes: Changes) -> list[Statement]:
    """The batch's writes, in the order the SQLAlchemy path runs them."""
    out: list[Statement] = []
    keys = {iid: key for key, iid in changes.idempotency_keys}
    if changes.new_instances:
        out.append(
            _NEW_INSTANCES.statement(
                {**rows.instance_values(r), "idempotency_key": keys.get(r.id)}
                for r in changes.new_instances
            )
        )
    if changes.updated_instances:
        out.append(
            _UPDATED_INSTANCES.statement(rows.instance_values(r) for r in changes.updated_instances)
        )
    if changes.new_tasks:
        out.append(_NEW_TASKS.statement(rows.task_values(i, t) for i, t in changes.new_tasks))
    leased = [rows.task_values(i, t) for i, t in changes.updated_tasks if t.lease_changed]
    if leased:
        out.append(_LEASED_TASKS.statement(leased))
    others = [rows.task_values(i, t) for i, t in changes.updated_tasks if not t.lease_changed]
    if others:
        out.append(_UPDATED_TASKS.statement(others))
    if changes.events:
        out.append(_EVENTS.statement(rows.event_values(changes)))
        out.append(_FEED.statement(rows.feed_values(changes)))
    if changes.new_timers:
        out.append(_TIMERS.statement(rows.timer_values(t) for t in changes.new_timers))
    if changes.deleted_timers:
        out.append((_DELETE_TIMER, [(t,) for t in changes.deleted_timers]))
    return out


def _run(connection: sqlite3.Connection, batch: list[Statement]) -> None:
    for sql, params in batch:
        connection.executemany(sql, params)


async def save(conn: AsyncConnection, changes: Changes) -> None:
    """Write one batch in the open transaction of ``conn`` with one hop to its thread."""
    batch = statements(changes)
    if not batch:
        return
    fairy = await conn.get_raw_connection()
    driver: Any = fairy.driver_connection  # the aiosqlite.Connection under SQLAlchemy's adapter
    # aiosqlite's own queue to its thread (``_execute``): one function, one wake-up of the loop
    try:
        await driver._execute(_run, driver._conn, batch)
    except sqlite3.Error as exc:  # as SQLAlchemy raises it, so the store maps it the same way
        raise DBAPIError.instance(
            "; ".join(sql for sql, _ in batch), None, exc, sqlite3.Error
        ) from exc
