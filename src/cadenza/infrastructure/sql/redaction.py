"""``SqlRedactionStore``: redaction rules per workspace in ``redaction_rules`` (the
``RedactionStore`` port) on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cadenza.application.pii_rules import StoredRules
from cadenza.domain.json import JSON
from cadenza.domain.pii import CustomRule, RedactionRules
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import redaction_rules

_R = redaction_rules.c


def rules_values(rules: RedactionRules) -> dict[str, object]:
    """The columns of ``rules`` (detectors sorted, custom rules in their order)."""
    custom: JSON = [
        {"name": r.name, "pattern": r.pattern, "replacement": r.replacement} for r in rules.custom
    ]
    detectors: JSON = [*sorted(rules.detectors)]
    return {"enabled": rules.enabled, "detectors": detectors, "custom": custom}


def rules_of(enabled: object, detectors: Any, custom: Any) -> RedactionRules:
    return RedactionRules(
        bool(enabled),
        frozenset(str(d) for d in detectors or ()),
        tuple(
            CustomRule(str(c["name"]), str(c["pattern"]), str(c.get("replacement", "")))
            for c in custom or ()
        ),
    )


def _stored(r: Any) -> StoredRules:
    return StoredRules(
        r.workspace_id, rules_of(r.enabled, r.detectors, r.custom), r.updated_at, r.updated_by
    )


class SqlRedactionStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._reader = store.engine.execution_options(**{READ_ONLY: True})

    async def rules(self, workspace_id: str) -> StoredRules | None:
        stmt = sa.select(redaction_rules).where(_R.workspace_id == workspace_id)
        async with self._reader.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _stored(row)

    async def all_rules(self) -> list[StoredRules]:
        stmt = sa.select(redaction_rules).order_by(_R.workspace_id)
        async with self._reader.connect() as conn:
            return [_stored(r) for r in await conn.execute(stmt)]

    async def put_rules(self, stored: StoredRules) -> None:
        values = {
            **rules_values(stored.rules),
            "updated_at": stored.updated_at,
            "updated_by": stored.updated_by,
        }

        async def write() -> None:
            async with self._store.write() as tx:
                mine = _R.workspace_id == stored.workspace_id
                changed = await tx.conn.execute(
                    redaction_rules.update().where(mine).values(**values)
                )
                if not changed.rowcount:
                    await tx.conn.execute(
                        redaction_rules.insert().values(workspace_id=stored.workspace_id, **values)
                    )
                await write_pending(tx.conn)  # the audit row commits with the change

        await shielded(self._store.engine, write())
