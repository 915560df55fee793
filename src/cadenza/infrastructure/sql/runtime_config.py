"""``SqlConfigStore``: runtime configuration rows in ``runtime_config`` (the ``ConfigStore``)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.config_model import ConfigRow
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import runtime_config

_T = runtime_config
_C = runtime_config.c


def _row(r: Any) -> ConfigRow:
    body = json.loads(r.body)
    sealed = None if r.sealed is None else bytes(r.sealed)
    return ConfigRow(
        r.workspace_id,
        r.kind,
        r.name,
        body if isinstance(body, dict) else {},
        r.key_id,
        sealed,
        r.revision,
        r.updated_at,
        r.updated_by,
    )


class SqlConfigStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def rows(self, kind: str | None = None) -> list[ConfigRow]:
        stmt = sa.select(_T).order_by(_C.workspace_id, _C.kind, _C.name)
        if kind is not None:
            stmt = stmt.where(_C.kind == kind)
        async with self._reader.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).all()]

    async def row(self, workspace_id: str, kind: str, name: str) -> ConfigRow | None:
        stmt = sa.select(_T).where(*_key(workspace_id, kind, name))
        async with self._reader.connect() as conn:
            found = (await conn.execute(stmt)).first()
        return None if found is None else _row(found)

    async def put(self, row: ConfigRow) -> ConfigRow:
        values = {
            "body": json.dumps(row.body, separators=(",", ":"), sort_keys=True),
            "key_id": row.key_id,
            "sealed": row.sealed,
            "updated_at": row.updated_at,
            "updated_by": row.updated_by,
        }
        where = _key(row.workspace_id, row.kind, row.name)
        for _ in range(2):  # update, else insert; a concurrent insert makes the update win
            async with self._engine.begin() as conn:
                stmt = _T.update().where(*where).values(revision=_C.revision + 1, **values)
                if (await conn.execute(stmt)).rowcount:
                    await write_pending(conn)  # the audit row commits with the change
                    revision = (await conn.execute(sa.select(_C.revision).where(*where))).scalar()
                    return _with_revision(row, int(revision or 0))
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        _T.insert().values(
                            workspace_id=row.workspace_id,
                            kind=row.kind,
                            name=row.name,
                            revision=1,
                            **values,
                        )
                    )
                    await write_pending(conn)
                return _with_revision(row, 1)
            except IntegrityError:
                continue
        raise RuntimeError("configuration row changed concurrently twice")  # pragma: no cover

    async def delete(self, workspace_id: str, kind: str, name: str) -> bool:
        async with self._engine.begin() as conn:
            deleted = bool(
                (await conn.execute(_T.delete().where(*_key(workspace_id, kind, name)))).rowcount
            )
            if deleted:
                await write_pending(conn)
            return deleted

    async def sealed_not_under(self, key_id: str, limit: int) -> list[ConfigRow]:
        stmt = (
            sa.select(_T)
            .where(_C.sealed.is_not(None), _C.key_id != key_id)
            .order_by(_C.workspace_id, _C.kind, _C.name)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).all()]

    async def reseal(self, old: ConfigRow, key_id: str, sealed: bytes) -> bool:
        stmt = (
            _T.update()
            .where(
                *_key(old.workspace_id, old.kind, old.name),
                _C.revision == old.revision,
                _C.key_id == old.key_id,
                _C.sealed == old.sealed,
            )
            .values(key_id=key_id, sealed=sealed)
        )
        async with self._engine.begin() as conn:
            return bool((await conn.execute(stmt)).rowcount)


def _key(workspace_id: str, kind: str, name: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (_C.workspace_id == workspace_id, _C.kind == kind, _C.name == name)


def _with_revision(row: ConfigRow, revision: int) -> ConfigRow:
    return ConfigRow(
        row.workspace_id,
        row.kind,
        row.name,
        row.body,
        row.key_id,
        row.sealed,
        revision,
        row.updated_at,
        row.updated_by,
    )
