"""Who is calling: users, workspaces, sessions, API keys and the first admin.

A sign-in is a *session* (a row with the refresh token's hash): access tokens carry its id
and are refused as soon as it is revoked (sign-out, sign-out everywhere, an admin revoking
the user's sessions, disabling the user, a new password). Every request re-reads the user,
the session and the membership, so a change of rights takes effect on the next request.
Roles and permissions live in ``roles``; what an API key may do, in ``access``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from cadenza.application.access import check_key, check_mint, key_principal, user_principal
from cadenza.application.ports import Clock, IdGenerator
from cadenza.application.ports_api import (
    ApiKey,
    IdentityConflict,
    IdentityStore,
    Session,
    User,
    Workspace,
)
from cadenza.application.roles import (
    ROLE_PERMISSIONS,
    AuthError,
    Forbidden,
    Permission,
    Principal,
    Role,
    outranks,
)
from cadenza.domain.errors import NotFound

__all__ = [
    "API_KEY_PREFIX",
    "MIN_PASSWORD",
    "ROLE_PERMISSIONS",
    "AuthError",
    "Forbidden",
    "Identity",
    "IdentityInvalid",
    "PasswordHasher",
    "Permission",
    "Principal",
    "Role",
    "TokenCodec",
    "TokenInvalid",
    "TokenPair",
    "check_password",
    "hash_key",
]

API_KEY_PREFIX = "cdz_"
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,79}$")
_MAX_ID = 40  # longer session ids in a token are refused before any lookup


class IdentityInvalid(ValueError):
    """A user, workspace or key request is invalid (422); the message says why."""


class TokenInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password: str, hashed: str) -> bool: ...

    def needs_rehash(self, hashed: str) -> bool:
        """True when ``hashed`` was made with other (older) parameters than new hashes."""
        ...


class TokenCodec(Protocol):
    def issue(self, claims: dict[str, object], ttl_s: float) -> str: ...

    def decode(self, token: str) -> dict[str, object]:
        """Raise TokenInvalid ('expired', 'invalid signature', ...)."""
        ...


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Identity:
    """Login, sessions, tokens, API keys and the bootstrap of the first admin."""

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

    # ---- sessions ------------------------------------------------------------------------
    async def login(self, username: str, password: str) -> TokenPair:
        """A new session. An old password hash is re-made with the current parameters."""
        user = await self.store.user_by_name(username)
        if user is None or user.disabled:
            # spend the same time as a real check so a username cannot be probed by timing
            if self._dummy_hash is None:
                self._dummy_hash = await self._hasher.hash(secrets.token_hex(8))
            await self._hasher.verify(password, self._dummy_hash)
            raise AuthError("invalid username or password")
        if not await self._hasher.verify(password, user.password_hash):
            raise AuthError("invalid username or password")
        if self._hasher.needs_rehash(user.password_hash):
            rehashed = await self._hasher.hash(password)
            await self.store.update_user(dataclasses.replace(user, password_hash=rehashed))
        now = self._clock.now()
        await self.store.drop_sessions(user.id, expired_before=now)
        secret = secrets.token_urlsafe(32)
        session = Session(
            self._new_id(), user.id, hash_key(secret), now, now + self._refresh_ttl, False
        )
        await self.store.add_session(session)
        return TokenPair(self._access(session), f"{session.id}.{secret}", int(self._access_ttl))

    def _access(self, session: Session) -> str:
        claims: dict[str, object] = {"sub": session.user_id, "typ": "access", "sid": session.id}
        return self._codec.issue(claims, self._access_ttl)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new access token for the session of ``refresh_token`` (which stays the same:
        the console shares one session between its tabs)."""
        session_id, _, secret = refresh_token.partition(".")
        session = await self._session(session_id)
        if not hmac.compare_digest(hash_key(secret), session.token_hash):
            raise AuthError("token rejected: not a refresh token of an active session")
        await self._user(session.user_id)
        return TokenPair(self._access(session), refresh_token, int(self._access_ttl))

    async def _session(self, session_id: object) -> Session:
        found = None
        if isinstance(session_id, str) and 0 < len(session_id) <= _MAX_ID:
            found = await self.store.session(session_id)
        if found is None or found.revoked or found.expires_at <= self._clock.now():
            raise AuthError("token rejected: the session ended (signed out, revoked or expired)")
        return found

    async def _user(self, user_id: object) -> User:
        user = await self.store.user(str(user_id))
        if user is None or user.disabled:
            raise AuthError("token rejected: the user no longer exists or is disabled")
        return user

    async def logout(self, p: Principal) -> None:
        """End the caller's session: its refresh and access tokens stop working."""
        await self.store.revoke_session(_session_of(p))

    async def logout_everywhere(self, p: Principal) -> int:
        """End every session of the caller's user; how many were active."""
        _session_of(p)
        assert p.user_id is not None
        return await self.store.revoke_sessions(p.user_id)

    async def revoke_sessions(self, user_id: str) -> int:
        """End every session of a user (for admins); NotFound for an unknown user."""
        if await self.store.user(user_id) is None:
            raise NotFound(f"no user with id {user_id!r}")
        return await self.store.revoke_sessions(user_id)

    # ---- authentication ------------------------------------------------------------------
    async def authenticate(self, credential: str, workspace: str | None) -> Principal:
        """A principal for a bearer credential (an access token or an API key)."""
        if credential.startswith(API_KEY_PREFIX):
            return await self._key_principal(credential, workspace)
        try:
            claims = self._codec.decode(credential)
        except TokenInvalid as exc:
            raise AuthError(f"token rejected: {exc.reason}") from exc
        if claims.get("typ") != "access":
            raise AuthError("token rejected: not an access token")
        session = await self._session(claims.get("sid"))
        if session.user_id != claims.get("sub"):
            raise AuthError("token rejected: the session belongs to another user")
        return await user_principal(self.store, session.user_id, session.id, workspace)

    async def _key_principal(self, secret: str, workspace: str | None) -> Principal:
        now = self._clock.now()
        key = check_key(await self.store.key_by_hash(hash_key(secret)), now)
        current = await key_principal(self.store, key, now)
        if workspace is not None and workspace != key.workspace_id:
            raise Forbidden(f"this API key is scoped to workspace {key.workspace_id!r}")
        if key.last_used_at is None or now - key.last_used_at > 60:
            await self.store.touch_key(key.id, now)
        return current

    async def revalidate(self, p: Principal) -> Principal:
        """``p`` as it stands now (for long-lived streams): AuthError or Forbidden when its
        key, session, user or membership no longer allows reading the workspace."""
        if p.key_id is not None:
            now = self._clock.now()
            key = check_key(await self.store.key(p.key_id), now)
            current = await key_principal(self.store, key, now)
        else:
            session = await self._session(p.session_id)
            if session.user_id != p.user_id:
                raise AuthError("token rejected: the session belongs to another user")
            current = await user_principal(self.store, session.user_id, session.id, p.workspace_id)
        current.require(Permission.READ)
        return current

    # ---- API keys ------------------------------------------------------------------------
    async def create_key(
        self, p: Principal, name: str, role: Role, ttl_s: float | None
    ) -> tuple[ApiKey, str]:
        """A new key in ``p``'s workspace and its secret, which is shown once only. The key
        never acts with more than its creator's rights at the time it is used."""
        p.require(Permission.MANAGE)
        if outranks(role, p.role):
            raise Forbidden(f"a {p.role.value} cannot make a key with role {role.value!r}")
        if not 1 <= len(name) <= 80:
            raise IdentityInvalid("name: 1-80 characters")
        if p.user_id is None:
            await check_mint(self.store, p, self._clock.now())
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


def _session_of(p: Principal) -> str:
    if p.session_id is None:
        raise IdentityInvalid(
            "API keys have no session: revoke a key with DELETE /api/v1/api-keys/{id}"
        )
    return p.session_id


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise IdentityInvalid(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise IdentityInvalid("password: at most 256 characters")
