"""The accounts: users (their passwords, rights and state) and workspaces, and the first admin.

What people sign in *as* and *where*, as opposed to how they sign in (``identity.Identity``,
which extends ``Accounts`` with sessions, tokens and API keys). A user's password is kept as
a slow salted hash (``PasswordHasher``); disabling a user or giving them a new password ends
all their sessions at once.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Protocol

from cadenza.application.ports import Clock, IdGenerator
from cadenza.application.ports_api import IdentityConflict, IdentityStore, User, Workspace
from cadenza.application.roles import Role
from cadenza.domain.errors import NotFound

MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,79}$")


class IdentityInvalid(ValueError):
    """A user, workspace or key request is invalid (422); the message says why."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, hashed: str) -> bool: ...

    def needs_rehash(self, hashed: str) -> bool:
        """True when ``hashed`` was made with other (older) parameters than new hashes."""
        ...


class Accounts:
    """Users and workspaces: create, change, and the bootstrap of the first admin."""

    def __init__(
        self, store: IdentityStore, hasher: PasswordHasher, clock: Clock, new_id: IdGenerator
    ) -> None:
        self.store = store
        self._hasher = hasher
        self._clock = clock
        self._new_id = new_id

    async def create_user(self, username: str, password: str, *, is_admin: bool = False) -> User:
        if not _USERNAME.match(username):
            raise IdentityInvalid(
                "username: 2-80 characters: letters, digits, '_', '.', '@' or '-'"
            )
        check_password(password)
        user = User(
            self._new_id(),
            username,
            await self._hasher.hash(password),
            is_admin,
            False,
            self._clock.now(),
        )
        await self.store.add_user(user)
        return user

    async def update_user(
        self,
        user_id: str,
        *,
        disabled: bool | None = None,
        is_admin: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Change what is given; NotFound for an unknown user. Disabling a user or setting
        a new password revokes all their sessions (their API keys stop with their rights)."""
        user = await self.store.user(user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id!r}")
        password_hash = user.password_hash
        if password is not None:
            check_password(password)
            password_hash = await self._hasher.hash(password)
        user = dataclasses.replace(
            user,
            password_hash=password_hash,
            disabled=user.disabled if disabled is None else disabled,
            is_admin=user.is_admin if is_admin is None else is_admin,
        )
        await self.store.update_user(user)
        if disabled or password is not None:
            await self.store.revoke_sessions(user.id)
        return user

    async def create_workspace(self, name: str) -> Workspace:
        """A new workspace with a random id: a deleted workspace's id is never reused, so its
        leftover data cannot reappear in a new one of the same name."""
        if not _USERNAME.match(name):
            raise IdentityInvalid("name: 2-80 characters: letters, digits, '_', '.', '@' or '-'")
        workspace = Workspace(self._new_id(), name, self._clock.now())
        await self.store.add_workspace(workspace)
        return workspace

    async def ensure_first_admin(self, password: str | None) -> User | None:
        """Create user ``admin`` and workspace ``default`` when there are no users yet.
        Returns the new admin, or None when users exist. Raises IdentityInvalid when a first
        admin is needed and ``password`` is missing or too weak: there is no default.

        Several API processes may start at once on an empty database: all see no users, the
        username's unique constraint lets one insert the admin, and the others get None (they
        read the winner's admin back) and start normally; the winner makes the workspace."""
        if await self.store.count_users():
            return None
        if not password:
            raise IdentityInvalid(
                "no users exist yet: set CADENZA_ADMIN_PASSWORD (at least "
                f"{MIN_PASSWORD} characters) or start `cadenza serve` on a terminal to be "
                "asked for the first admin's password"
            )
        try:
            admin = await self.create_user("admin", password, is_admin=True)
        except IdentityConflict:
            if await self.store.user_by_name("admin") is None:
                raise
            return None
        if await self.store.workspace("default") is None:
            await self.store.add_workspace(Workspace("default", "default", self._clock.now()))
        await self.store.set_member("default", admin.id, Role.ADMIN.value)
        return admin


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise IdentityInvalid(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise IdentityInvalid("password: at most 256 characters")
