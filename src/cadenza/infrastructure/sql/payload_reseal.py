"""``SqlPayloadRows``: the rows key rotation re-seals (``application/payload_reseal.py``).

Payload columns are read as text (``CAST(... AS TEXT)``; PostgreSQL's ``json`` keeps its
input text, MySQL/MariaDB and SQLite store text) so that a write can be compared with what
was read, on every backend (PostgreSQL's ``json`` has no equality). Only rows whose text
mentions ``$cadenza`` (the marker key) are returned: the database filters, Python decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.payload_reseal import (
    EVENT_DATA,
    JSON_SLOT,
    TEXT_SLOT,
    RowChange,
    StoredColumn,
    StoredRow,
)
from cadenza.application.payloads import MARKER
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import events, instances, tasks

# table -> (primary key columns, instance id column, {payload column: form})
_TABLES: dict[str, tuple[sa.Table, tuple[str, ...], str, dict[str, str]]] = {
    "instances": (
        instances,
        ("id",),
        "id",
        {"inputs": JSON_SLOT, "outputs": JSON_SLOT, "error": TEXT_SLOT},
    ),
    "tasks": (
        tasks,
        ("id",),
        "instance_id",
        {"output": JSON_SLOT, "detail": JSON_SLOT, "error": TEXT_SLOT},
    ),
    "events": (events, ("instance_id", "seq"), "instance_id", {"data": EVENT_DATA}),
}


def _text(column: sa.ColumnElement[object]) -> sa.ColumnElement[str]:
    return sa.cast(column, sa.Text)


def _after(
    table: sa.Table, key: tuple[str, ...], after: tuple[str | int, ...]
) -> sa.ColumnElement[bool]:
    """Rows after ``after`` in key order (a two-column key spelled out: every backend)."""
    first = table.c[key[0]]
    if len(key) == 1:
        return first > after[0]
    second = table.c[key[1]]
    return sa.or_(first > after[0], sa.and_(first == after[0], second > after[1]))


class SqlPayloadRows:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    def tables(self) -> Sequence[str]:
        return tuple(_TABLES)

    async def page(
        self, table: str, after: tuple[str | int, ...] | None, limit: int
    ) -> list[StoredRow]:
        t, key, iid, forms = _TABLES[table]
        texts = [_text(t.c[name]).label(name) for name in forms]
        stmt = sa.select(*(t.c[k] for k in key), t.c[iid].label("iid_"), *texts)
        stmt = stmt.where(sa.or_(*(_text(t.c[n]).like(f"%{MARKER}%") for n in forms)))
        if after is not None:
            stmt = stmt.where(_after(t, key, after))
        stmt = stmt.order_by(*(t.c[k] for k in key)).limit(limit)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        out = []
        for r in rows:
            m = r._mapping
            columns = tuple(
                StoredColumn(name, form, str(m[name]))
                for name, form in forms.items()
                if m[name] is not None
            )
            out.append(StoredRow(table, tuple(m[k] for k in key), str(m["iid_"]), columns))
        return out

    async def update(self, changes: Sequence[RowChange]) -> int:
        written = 0
        async with self._engine.begin() as conn:
            for change in changes:
                t, key, _, _ = _TABLES[change.row.table]
                raw = {c.name: c.raw for c in change.row.columns}
                where = [t.c[k] == v for k, v in zip(key, change.row.key, strict=True)]
                where += [_text(t.c[name]) == raw[name] for name in change.values]
                stmt = t.update().where(*where).values(**change.values)
                written += (await conn.execute(stmt)).rowcount
        return written

    async def mentions(self, instance_id: str, text: str) -> bool:
        pattern = f"%{text}%"
        async with self._reader.connect() as conn:
            for t, _, iid, forms in _TABLES.values():
                mention = sa.or_(*(_text(t.c[n]).like(pattern) for n in forms))
                stmt = sa.select(sa.literal(1)).where(t.c[iid] == instance_id, mention).limit(1)
                if (await conn.execute(stmt)).first() is not None:
                    return True
        return False
