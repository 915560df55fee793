"""Who is calling: sign-in sessions, access tokens and API keys.

A sign-in is a *session* (a row with the refresh token's hash): access tokens carry its id
and are refused as soon as it is revoked (sign-out, sign-out everywhere, an admin revoking
the user's sessions, disabling the user, a new password). Every request re-reads the user,
the session and the membership, so a change of rights takes effect on the next request.
Users, workspaces and the first admin live in ``accounts``; roles and permissions in
``roles``; what an API key may do, in ``access``.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from cadenza.application.access import check_key, check_mint, key_principal, user_principal
from cadenza.application.accounts import Accounts, IdentityInvalid, PasswordHasher
from cadenza.application.ports import Clock, IdGenerator
from cadenza.application.ports_api import ApiKey, IdentityStore, Session, User
from cadenza.application.roles import (
    ROLE_PERMISSIONS,
    AuthError,
    Forbidden,
    Permission,
    Principal,
    Role,
    outranks,
)
from cadenza.application.rotation import Reuse, hash_key, rotate
from cadenza.domain.errors import NotFound

__all__ = [
    "API_KEY_PREFIX",
    "ROLE_PERMISSIONS",
    "AuthError",
    "Forbidden",
    "Identity",
    "Permission",
    "Principal",
    "Reuse",
    "ReuseAudit",
    "Role",
    "TokenCodec",
    "TokenInvalid",
    "TokenPair",
    "hash_key",
]

API_KEY_PREFIX = "cdz_"
_MAX_ID = 40  # longer session ids in a token are refused before any lookup
log = logging.getLogger(__name__)
# wraps the revocation of a session whose retired refresh token came back (the audit row)
ReuseAudit = Callable[[Reuse], AbstractAsyncContextManager[object]]


class TokenInvalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


class Identity(Accounts):
    """Sign-in: sessions, tokens and API keys, over the users and workspaces of ``Accounts``."""

    def __init__(
        self,
        store: IdentityStore,
        hasher: PasswordHasher,
        codec: TokenCodec,
        clock: Clock,
        new_id: IdGenerator,
        access_ttl_s: float = 900,
        refresh_ttl_s: float = 7 * 86400,
        refresh_grace_s: float = 10,
    ) -> None:
        super().__init__(store, hasher, clock, new_id)
        self._codec = codec
        self._access_ttl = access_ttl_s
        self._refresh_ttl = refresh_ttl_s
        self._refresh_grace = refresh_grace_s
        self._dummy_hash: str | None = None

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

    async def refresh(self, refresh_token: str, audit: ReuseAudit | None = None) -> TokenPair:
        """A new access token and a new refresh token for the session of ``refresh_token``,
        which stops working (rotation, see ``rotation``). The token replaced last is answered
        with the same new pair for ``refresh_grace_s`` (tabs refreshing at once); any other
        replaced token ends the session, inside ``audit``."""
        session_id, _, secret = refresh_token.partition(".")
        session = await self._session(session_id)
        await self._user(session.user_id)
        outcome = await rotate(self.store, session, secret, self._clock.now(), self._refresh_grace)
        if outcome.reuse is not None:
            await self._end_reused(outcome.reuse, audit)
        if outcome.secret is None:
            raise AuthError("token rejected: not a refresh token of an active session")
        pair = f"{session.id}.{outcome.secret}"
        return TokenPair(self._access(session), pair, int(self._access_ttl))

    async def _end_reused(self, reuse: Reuse, audit: ReuseAudit | None) -> None:
        async with nullcontext() if audit is None else audit(reuse):
            await self.store.revoke_session(reuse.session.id)
        log.warning(
            "a replaced refresh token was presented again: session %s of user %s revoked",
            reuse.session.id,
            reuse.session.user_id,
        )
        raise AuthError(
            "token rejected: this refresh token was already used, so the session is ended "
            "(sign in again)"
        )

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
