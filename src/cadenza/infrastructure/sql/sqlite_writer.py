"""A group commit's writes on SQLite as plain SQL and parameter tuples.

Through SQLAlchemy each statement pays for compiling and per-row bind processing, and through
aiosqlite for one hop to the driver's thread. Here a batch's writes (up to ten statements) are
prepared on the event loop, each JSON value encoded once, and ``sqlite_tx`` runs them together
with ``sqlite3``'s ``executemany`` in one hop to its thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

import orjson
import sqlalchemy as sa

from cadenza.application.payloads import PLAIN, EncodeBatch, PayloadCodec
from cadenza.application.ports import Changes
from cadenza.infrastructure.sql import rows
from cadenza.infrastructure.sql.audit import entry_values
from cadenza.infrastructure.sql.payload_rows import RowEncoder
from cadenza.infrastructure.sql.tables import (
    audit,
    events,
    feed,
    instances,
    outbox,
    tasks,
    timers,
)

Statement = tuple[str, list[tuple[object, ...]]]


def dumps(value: object) -> str:
    """JSON text of a value: orjson (a tenth of ``json.dumps``'s cost), or the standard
    library for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def _encoder(
    table: sa.Table, columns: Sequence[str]
) -> Callable[[dict[str, object]], tuple[object, ...]]:
    """Row dict -> parameter tuple in ``columns`` order; JSON columns encoded as SQLAlchemy's
    ``JSON`` type stores them (``None`` as the JSON ``null``, as with ``none_as_null=False``)."""
    json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.JSON)]

    def encode(values: dict[str, object]) -> tuple[object, ...]:
        row = [values[c] for c in columns]
        for i in json_at:
            value = row[i]
            row[i] = "null" if value is None else dumps(value)
        return tuple(row)

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


def _columns(table: sa.Table) -> tuple[str, ...]:
    """Every column of ``table`` but an autoincrement key (the feed's, the audit log's id)."""
    return tuple(c.name for c in table.columns if c.autoincrement is not True)


_NEW_INSTANCES = _inserting(instances, _columns(instances))
_UPDATED_INSTANCES = _updating(instances, rows.INSTANCE_STATE)
_NEW_TASKS = _inserting(tasks, _columns(tasks))
_LEASED_TASKS = _updating(tasks, rows.TASK_STATE + rows.TASK_LEASE)
_UPDATED_TASKS = _updating(tasks, rows.TASK_STATE)
_EVENTS = _inserting(events, _columns(events))
_FEED = _inserting(feed, _columns(feed))
_TIMERS = _inserting(timers, _columns(timers))
_OUTBOX = _inserting(outbox, _columns(outbox))
_AUDIT = _inserting(audit, _columns(audit))
_DELETE_TIMER = f"DELETE FROM {timers.name} WHERE id = ?"  # noqa: S608


def statements(
    changes: Changes, codec: PayloadCodec = PLAIN
) -> tuple[list[Statement], EncodeBatch]:
    """The batch's writes, in the order the SQLAlchemy path runs them, payloads in their
    stored form; and what must be done before they run (``EncodeBatch.flush``)."""
    out: list[Statement] = []
    enc = RowEncoder(codec, changes)
    keys = {iid: key for key, iid in changes.idempotency_keys}
    if changes.new_instances:
        out.append(
            _NEW_INSTANCES.statement(
                enc.instance({**rows.instance_values(r), "idempotency_key": keys.get(r.id)})
                for r in changes.new_instances
            )
        )
    if changes.updated_instances:
        out.append(
            _UPDATED_INSTANCES.statement(
                enc.instance(rows.instance_values(r)) for r in changes.updated_instances
            )
        )
    if changes.new_tasks:
        out.append(
            _NEW_TASKS.statement(enc.task(rows.task_values(i, t)) for i, t in changes.new_tasks)
        )
    updated = changes.updated_tasks
    leased = [enc.task(rows.task_values(i, t)) for i, t in updated if t.lease_changed]
    if leased:
        out.append(_LEASED_TASKS.statement(leased))
    others = [enc.task(rows.task_values(i, t)) for i, t in updated if not t.lease_changed]
    if others:
        out.append(_UPDATED_TASKS.statement(others))
    if changes.events:
        out.append(_EVENTS.statement(enc.event(v) for v in rows.event_values(changes)))
        out.append(_FEED.statement(rows.feed_values(changes)))
    if changes.new_timers:
        out.append(_TIMERS.statement(rows.timer_values(t) for t in changes.new_timers))
    if changes.deleted_timers:
        out.append((_DELETE_TIMER, [(t,) for t in changes.deleted_timers]))
    if changes.outbox:
        out.append(_OUTBOX.statement(rows.outbox_values(changes)))
    if changes.audit:
        out.append(_AUDIT.statement(entry_values(e) for e in changes.audit))
    return out, enc.batch
