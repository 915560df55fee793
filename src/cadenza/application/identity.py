"""Who is calling and what they may do: users, workspaces, API keys, roles and permissions.

Roles are per workspace (a membership, or the role an API key was made with); a system admin
acts as ``admin`` in every workspace. The permission table below is the whole policy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cadenza.application.ports import Clock, IdGenerator
from cadenza.application.ports_api import ApiKey, IdentityStore, User, Workspace
from cadenza.domain.errors import NotFound

API_KEY_PREFIX = "cdz_"
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,79}$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    EDITOR = "editor"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # definitions, instances, tasks, agents, catalogs, streams
    RUN = "run"  # start, cancel, retry, signal, approve; worker poll/complete; heartbeats
    EDIT = "edit"  # save, publish, archive and delete definitions
    AGENTS = "agents"  # register, change, drain and remove agents; test providers
    MANAGE = "manage"  # the workspace's API keys and members
    SYSTEM = "system"  # users, workspaces, settings, MCP tool approvals (system admins)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.RUN}),
    Role.EDITOR: frozenset({Permission.READ, Permission.RUN, Permission.EDIT, Permission.AGENTS}),
    Role.ADMIN: frozenset(set(Permission) - {Permission.SYSTEM}),
}


class AuthError(Exception):
    """No valid credentials (401)."""


class Forbidden(Exception):
    """Valid credentials without the right (403)."""


class IdentityInvalid(ValueError):
    """A user, workspace or key request is invalid (422); the message says why."""


class TokenInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, hashed: str) -> bool: ...


class TokenCodec(Protocol):
    def issue(self, claims: dict[str, object], ttl_s: float) -> str: ...

    def decode(self, token: str) -> dict[str, object]:
        """Raise TokenInvalid ('expired', 'invalid signature', ...)."""
        ...


@dataclass(frozen=True)
class Principal:
    workspace_id: str
    role: Role
    user_id: str | None = None
    key_id: str | None = None
    is_system_admin: bool = False

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"key:{self.key_id}"

    def can(self, permission: Permission) -> bool:
        if permission is Permission.SYSTEM:
            return self.is_system_admin
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"role {self.role.value!r} lacks the {permission.value!r} permission")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Identity:
    """Login, tokens, API keys and the bootstrap of the first admin."""

    def __init__(
        self,
        store: IdentityStore,
        hasher: PasswordHasher,
        codec: TokenCodec,
        clock: Clock,
        new_id: IdGenerator,
        access_ttl_s: float = 900,
        refresh_ttl_s: float = 7 * 86400,
    ) -> None:
        self.store = store
        self._hasher = hasher
        self._codec = codec
        self._clock = clock
        self._new_id = new_id
        self._access_ttl = access_ttl_s
        self._refresh_ttl = refresh_ttl_s
        self._dummy_hash: str | None = None

    # ---- users ---------------------------------------------------------------------------
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
        """Change what is given; NotFound for an unknown user."""
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
        admin is needed and ``password`` is missing or too weak: there is no default."""
        if await self.store.count_users():
            return None
        if not password:
            raise IdentityInvalid(
                "no users exist yet: set CADENZA_ADMIN_PASSWORD (at least "
                f"{MIN_PASSWORD} characters) or start `cadenza serve` on a terminal to be "
                "asked for the first admin's password"
            )
        admin = await self.create_user("admin", password, is_admin=True)
        if await self.store.workspace("default") is None:
            await self.store.add_workspace(Workspace("default", "default", self._clock.now()))
        await self.store.set_member("default", admin.id, Role.ADMIN.value)
        return admin

    async def login(self, username: str, password: str) -> TokenPair:
        user = await self.store.user_by_name(username)
        if user is None or user.disabled:
            # spend the same time as a real check so a username cannot be probed by timing
            if self._dummy_hash is None:
                self._dummy_hash = await self._hasher.hash(secrets.token_hex(8))
            await self._hasher.verify(password, self._dummy_hash)
            raise AuthError("invalid username or password")
        if not await self._hasher.verify(password, user.password_hash):
            raise AuthError("invalid username or password")
        return self._pair(user.id)

    def _pair(self, user_id: str) -> TokenPair:
        access = self._codec.issue({"sub": user_id, "typ": "access"}, self._access_ttl)
        refresh = self._codec.issue({"sub": user_id, "typ": "refresh"}, self._refresh_ttl)
        return TokenPair(access, refresh, int(self._access_ttl))

    async def refresh(self, refresh_token: str) -> TokenPair:
        user = await self._token_user(refresh_token, "refresh")
        return self._pair(user.id)

    async def _token_user(self, token: str, typ: str) -> User:
        try:
            claims = self._codec.decode(token)
        except TokenInvalid as exc:
            raise AuthError(f"token rejected: {exc.reason}") from exc
        if claims.get("typ") != typ:
            raise AuthError(f"token rejected: not an {typ} token")
        user = await self.store.user(str(claims.get("sub")))
        if user is None or user.disabled:
            raise AuthError("token rejected: the user no longer exists or is disabled")
        return user

    # ---- authentication ------------------------------------------------------------------
    async def authenticate(self, credential: str, workspace: str | None) -> Principal:
        """A principal for a bearer credential (an access token or an API key)."""
        if credential.startswith(API_KEY_PREFIX):
            return await self._key_principal(credential, workspace)
        user = await self._token_user(credential, "access")
        roles = await self.store.memberships(user.id)
        if workspace is None:
            if not roles and not user.is_admin:
                raise Forbidden("the user belongs to no workspace")
            workspace = sorted(roles)[0] if roles else "default"
        role = (
            Role.ADMIN if user.is_admin else Role(roles[workspace]) if workspace in roles else None
        )
        if role is None or await self.store.workspace(workspace) is None:
            raise Forbidden(f"not a member of workspace {workspace!r}")
        return Principal(workspace, role, user_id=user.id, is_system_admin=user.is_admin)

    async def _key_principal(self, secret: str, workspace: str | None) -> Principal:
        key = await self.store.key_by_hash(hash_key(secret))
        now = self._clock.now()
        if key is None or key.revoked:
            raise AuthError("API key rejected: unknown or revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthError("API key rejected: expired")
        if workspace is not None and workspace != key.workspace_id:
            raise Forbidden(f"this API key is scoped to workspace {key.workspace_id!r}")
        if key.last_used_at is None or now - key.last_used_at > 60:
            await self.store.touch_key(key.id, now)
        return Principal(key.workspace_id, Role(key.role), key_id=key.id)

    # ---- API keys ------------------------------------------------------------------------
    async def create_key(
        self, p: Principal, name: str, role: Role, ttl_s: float | None
    ) -> tuple[ApiKey, str]:
        """A new key in ``p``'s workspace and its secret, which is shown once only."""
        p.require(Permission.MANAGE)
        if list(Role).index(role) > list(Role).index(p.role):
            raise Forbidden(f"a {p.role.value} cannot make a key with role {role.value!r}")
        if not 1 <= len(name) <= 80:
            raise IdentityInvalid("name: 1-80 characters")
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        now = self._clock.now()
        key = ApiKey(
            self._new_id(),
            p.workspace_id,
            name,
            role.value,
            hash_key(secret),
            p.subject,
            now,
            None if ttl_s is None else now + ttl_s,
            None,
            False,
        )
        await self.store.add_key(key)
        return key, secret


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise IdentityInvalid(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise IdentityInvalid("password: at most 256 characters")
