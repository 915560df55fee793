"""Users, workspaces, memberships, API keys and sessions (the ``IdentityStore`` port)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.ports_api import ApiKey, IdentityConflict, Session, User, Workspace
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import (
    api_keys,
    memberships,
    session_retired_tokens,
    sessions,
    users,
    workspaces,
)


def _user(r: Any) -> User:
    return User(r.id, r.username, r.password_hash, bool(r.is_admin), bool(r.disabled), r.created_at)


def _key(r: Any) -> ApiKey:
    return ApiKey(
        r.id,
        r.workspace_id,
        r.name,
        r.role,
        r.key_hash,
        r.created_by,
        r.created_at,
        r.expires_at,
        r.last_used_at,
        bool(r.revoked),
    )


_W = workspaces.c
_WS = sa.select(_W.id, _W.name, _W.created_at, _W.state)


def _workspace(r: Any) -> Workspace:
    return Workspace(r.id, r.name, r.created_at, r.state)


class SqlIdentityStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # reads never take SQLite's write lock: every request authenticates through here
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def _rows(self, stmt: sa.Executable) -> list[Any]:
        async with self._reader.connect() as conn:
            return list((await conn.execute(stmt)).all())

    async def _write(
        self, stmt: sa.Executable, conflict: str | None = None, new_id: str | None = None
    ) -> int:
        try:
            async with self._engine.begin() as conn:
                count = int((await conn.execute(stmt)).rowcount or 0)
                if count:  # the change's audit row, if one is pending (no row, no change)
                    await write_pending(conn, new_id)
                return count
        except IntegrityError as exc:
            if conflict is None:
                raise
            raise IdentityConflict(conflict) from exc

    # ---- users ---------------------------------------------------------------------------
    async def count_users(self) -> int:
        async with self._reader.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(users)) or 0)

    async def add_user(self, user: User) -> None:
        await self._write(
            users.insert().values(**user.__dict__),
            f"username {user.username!r} is taken",
            user.id,
        )

    async def update_user(self, user: User) -> None:
        values = {k: v for k, v in user.__dict__.items() if k != "id"}
        await self._write(users.update().where(users.c.id == user.id).values(**values))

    async def user(self, user_id: str) -> User | None:
        found = await self._rows(sa.select(users).where(users.c.id == user_id))
        return _user(found[0]) if found else None

    async def user_by_name(self, username: str) -> User | None:
        found = await self._rows(sa.select(users).where(users.c.username == username))
        return _user(found[0]) if found else None

    async def users(self) -> list[User]:
        return [_user(r) for r in await self._rows(sa.select(users).order_by(users.c.username))]

    # ---- workspaces ----------------------------------------------------------------------
    async def add_workspace(self, workspace: Workspace) -> None:
        await self._write(
            workspaces.insert().values(
                id=workspace.id,
                name=workspace.name,
                created_at=workspace.created_at,
                state=workspace.state,
            ),
            f"workspace name {workspace.name!r} is taken",
            workspace.id,
        )

    async def workspace(self, workspace_id: str) -> Workspace | None:
        found = await self._rows(_WS.where(workspaces.c.id == workspace_id))
        return _workspace(found[0]) if found else None

    async def workspaces(self) -> list[Workspace]:
        stmt = _WS.order_by(workspaces.c.name)
        return [_workspace(r) for r in await self._rows(stmt)]

    async def set_member(self, workspace_id: str, user_id: str, role: str | None) -> None:
        m = memberships.c
        async with self._engine.begin() as conn:
            await conn.execute(
                memberships.delete().where(m.workspace_id == workspace_id, m.user_id == user_id)
            )
            if role is not None:
                await conn.execute(
                    memberships.insert().values(
                        workspace_id=workspace_id, user_id=user_id, role=role
                    )
                )
            await write_pending(conn)

    async def memberships(self, user_id: str) -> dict[str, str]:
        stmt = sa.select(memberships).where(memberships.c.user_id == user_id)
        return {r.workspace_id: r.role for r in await self._rows(stmt)}

    async def grant(self, user_id: str, workspace_id: str) -> tuple[User, str | None] | None:
        m = memberships.c
        joined = users.outerjoin(
            memberships, sa.and_(m.user_id == users.c.id, m.workspace_id == workspace_id)
        )
        stmt = sa.select(users, m.role).select_from(joined).where(users.c.id == user_id)
        found = await self._rows(stmt)
        return (_user(found[0]), found[0].role) if found else None

    async def members(self, workspace_id: str) -> dict[str, str]:
        stmt = sa.select(memberships).where(memberships.c.workspace_id == workspace_id)
        return {r.user_id: r.role for r in await self._rows(stmt)}

    # ---- API keys ------------------------------------------------------------------------
    async def add_key(self, key: ApiKey) -> None:
        await self._write(api_keys.insert().values(**key.__dict__), new_id=key.id)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        found = await self._rows(sa.select(api_keys).where(api_keys.c.key_hash == key_hash))
        return _key(found[0]) if found else None

    async def key(self, key_id: str) -> ApiKey | None:
        found = await self._rows(sa.select(api_keys).where(api_keys.c.id == key_id))
        return _key(found[0]) if found else None

    async def keys(self, workspace_id: str) -> list[ApiKey]:
        stmt = (
            sa.select(api_keys)
            .where(api_keys.c.workspace_id == workspace_id)
            .order_by(api_keys.c.created_at)
        )
        return [_key(r) for r in await self._rows(stmt)]

    async def revoke_key(self, workspace_id: str, key_id: str) -> bool:
        c = api_keys.c
        stmt = (
            api_keys.update()
            .where(c.id == key_id, c.workspace_id == workspace_id)
            .values(revoked=True)
        )
        return bool(await self._write(stmt))

    async def touch_key(self, key_id: str, at: float) -> None:
        await self._write(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=at))

    # ---- sessions --------------------------------------------------------------------------
    async def add_session(self, session: Session) -> None:
        await self._write(sessions.insert().values(**session.__dict__))

    async def session(self, session_id: str) -> Session | None:
        found = await self._rows(sa.select(sessions).where(sessions.c.id == session_id))
        if not found:
            return None
        r = found[0]
        return Session(
            r.id,
            r.user_id,
            r.token_hash,
            r.created_at,
            r.expires_at,
            bool(r.revoked),
            r.previous_hash,
            r.rotated_at,
            r.next_sealed,
        )

    async def revoke_session(self, session_id: str) -> bool:
        c = sessions.c
        stmt = sessions.update().where(c.id == session_id, sa.not_(c.revoked))
        return bool(await self._write(stmt.values(revoked=True)))

    async def rotate_session(
        self, session_id: str, old_hash: str, new_hash: str, sealed: str, at: float
    ) -> bool:
        # the WHERE on the old hash is the compare-and-swap: of two processes refreshing with
        # the same token, one updates the row, the other counts 0 rows and takes the grace path
        c = sessions.c
        stmt = (
            sessions.update()
            .where(c.id == session_id, c.token_hash == old_hash, sa.not_(c.revoked))
            .values(token_hash=new_hash, previous_hash=old_hash, rotated_at=at, next_sealed=sealed)
        )
        async with self._engine.begin() as conn:
            if not (await conn.execute(stmt)).rowcount:
                return False
            retired = {"token_hash": old_hash, "session_id": session_id, "retired_at": at}
            await conn.execute(session_retired_tokens.insert().values(**retired))
            return True

    async def retired_session(self, token_hash: str) -> str | None:
        t = session_retired_tokens.c
        found = await self._rows(sa.select(t.session_id).where(t.token_hash == token_hash))
        return str(found[0].session_id) if found else None

    async def revoke_sessions(self, user_id: str) -> int:
        c = sessions.c
        stmt = sessions.update().where(c.user_id == user_id, sa.not_(c.revoked))
        return await self._write(stmt.values(revoked=True))

    async def drop_sessions(self, user_id: str, expired_before: float) -> None:
        c = sessions.c
        ended = sa.select(c.id).where(c.user_id == user_id, c.expires_at < expired_before)
        async with self._engine.begin() as conn:
            # the retired tokens go first: they are found through the sessions they belonged to
            t = session_retired_tokens.c
            await conn.execute(session_retired_tokens.delete().where(t.session_id.in_(ended)))
            await conn.execute(
                sessions.delete().where(c.user_id == user_id, c.expires_at < expired_before)
            )
