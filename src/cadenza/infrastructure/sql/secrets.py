"""``SqlSecretStore``: sealed workspace secrets in ``workspace_secrets`` (the ``SecretStore``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.secrets import SealedSecret, SecretInfo
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import workspace_secrets

_T = workspace_secrets
_C = workspace_secrets.c


def _info(r: Any) -> SecretInfo:
    return SecretInfo(r.name, r.created_at, r.updated_at, r.updated_by)


def _sealed(r: Any) -> SealedSecret:
    return SealedSecret(r.workspace_id, r.name, r.key_id, bytes(r.sealed), _info(r))


class SqlSecretStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def _rows(self, stmt: sa.Executable) -> list[Any]:
        async with self._reader.connect() as conn:
            return list((await conn.execute(stmt)).all())

    async def put(self, secret: SealedSecret) -> None:
        info = secret.info
        changes = {
            "key_id": secret.key_id,
            "sealed": secret.sealed,
            "updated_at": info.updated_at,
            "updated_by": info.updated_by,
        }
        where = (_C.workspace_id == secret.workspace_id, _C.name == secret.name)
        for _ in range(2):  # update, else insert; a concurrent insert makes the update win
            async with self._engine.begin() as conn:
                if (await conn.execute(_T.update().where(*where).values(**changes))).rowcount:
                    await write_pending(conn)  # the audit row commits with the change
                    return
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        _T.insert().values(
                            workspace_id=secret.workspace_id,
                            name=secret.name,
                            created_at=info.created_at,
                            **changes,
                        )
                    )
                    await write_pending(conn)
                return
            except IntegrityError:
                continue

    async def sealed(self, workspace_id: str, names: Collection[str]) -> list[SealedSecret]:
        stmt = sa.select(_T).where(_C.workspace_id == workspace_id, _C.name.in_(list(names)))
        return [_sealed(r) for r in await self._rows(stmt)]

    async def infos(self, workspace_id: str) -> list[SecretInfo]:
        stmt = (
            sa.select(_C.name, _C.created_at, _C.updated_at, _C.updated_by)
            .where(_C.workspace_id == workspace_id)
            .order_by(_C.name)
        )
        return [_info(r) for r in await self._rows(stmt)]

    async def delete(self, workspace_id: str, name: str) -> bool:
        async with self._engine.begin() as conn:
            stmt = _T.delete().where(_C.workspace_id == workspace_id, _C.name == name)
            deleted = bool((await conn.execute(stmt)).rowcount)
            if deleted:
                await write_pending(conn)
            return deleted

    async def sealed_not_under(self, key_id: str, limit: int) -> list[SealedSecret]:
        stmt = (
            sa.select(_T).where(_C.key_id != key_id).order_by(_C.workspace_id, _C.name).limit(limit)
        )
        return [_sealed(r) for r in await self._rows(stmt)]

    async def reseal(self, old: SealedSecret, key_id: str, sealed: bytes) -> bool:
        stmt = (
            _T.update()
            .where(
                _C.workspace_id == old.workspace_id,
                _C.name == old.name,
                _C.key_id == old.key_id,
                _C.sealed == old.sealed,
            )
            .values(key_id=key_id, sealed=sealed)
        )
        async with self._engine.begin() as conn:
            return bool((await conn.execute(stmt)).rowcount)
