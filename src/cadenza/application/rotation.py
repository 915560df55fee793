"""Refresh token rotation with reuse detection (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).

Every refresh replaces the session's refresh token. A token that was replaced is *retired*
(its hash kept until the session is dropped): presenting one again means two parties hold
the session's tokens — the legitimate client and a thief — and the server cannot tell which
is which, so the whole session is revoked (its refresh token and every access token of it).

Two tabs of the console, or two processes of the CLI, may refresh with the same token at
the same moment. The session row is updated by compare-and-swap on the token hash, so only
one rotation wins, in whichever API process it ran. The loser, and anyone presenting the
token just replaced within ``grace_s`` of its rotation, receives the *same* new refresh
token: the row keeps the new secret sealed under the old one (XOR with an HMAC of the old
secret, which only its holder knows; the row alone reveals nothing). A token presented
after the grace window, or one replaced earlier than the last rotation, is reuse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cadenza.application.ports_api import IdentityStore, Session

_SECRET_BYTES = 32
_PAD_LABEL = b"cadenza refresh rotation: next secret"


def hash_key(secret: str) -> str:
    """How a secret is stored: refresh tokens and API keys, as a SHA-256 hex digest."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> tuple[str, bytes]:
    """A fresh refresh secret (URL-safe text, as ``secrets.token_urlsafe(32)``) and its bytes."""
    raw = secrets.token_bytes(_SECRET_BYTES)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), raw


def _pad(previous_secret: str) -> bytes:
    return hmac.new(previous_secret.encode(), _PAD_LABEL, hashlib.sha256).digest()


def seal(raw: bytes, previous_secret: str) -> str:
    """``raw`` sealed under ``previous_secret``: a one-time pad (each secret is rotated away
    once, so each pad seals one value), hex."""
    return bytes(a ^ b for a, b in zip(raw, _pad(previous_secret), strict=True)).hex()


def unseal(sealed: str, previous_secret: str) -> str:
    raw = bytes(a ^ b for a, b in zip(bytes.fromhex(sealed), _pad(previous_secret), strict=True))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Reuse:
    """A retired refresh token was presented: the session it belonged to ends."""

    session: Session
    retired_s_ago: float | None  # since the last rotation, when it was the last replaced one


@dataclass(frozen=True)
class Outcome:
    """What a refresh found: the session's refresh secret to hand out, or reuse."""

    session: Session
    secret: str | None = None
    reuse: Reuse | None = None


async def rotate(
    store: IdentityStore, session: Session, secret: str, now: float, grace_s: float
) -> Outcome:
    """Rotate ``session``'s refresh token if ``secret`` is its current one; the current one if
    ``secret`` is the one just replaced and within the grace window; else reuse, or an
    ``Outcome`` without a secret (not a token of this session: a wrong guess, not reuse)."""
    presented = hash_key(secret)
    for _ in range(2):  # a lost compare-and-swap: read the winner's row once and decide again
        if hmac.compare_digest(presented, session.token_hash):
            fresh, raw = new_secret()
            sealed = seal(raw, secret)
            if await store.rotate_session(session.id, presented, hash_key(fresh), sealed, now):
                return Outcome(session, secret=fresh)
            reread = await store.session(session.id)
            if reread is None or reread.revoked:
                return Outcome(session)
            session = reread
            continue
        return _replaced(session, secret, presented, now, grace_s) or await _retired(
            store, session, presented
        )
    return Outcome(session)


def _replaced(
    session: Session, secret: str, presented: str, now: float, grace_s: float
) -> Outcome | None:
    """The outcome when ``secret`` is the token the last rotation replaced, else None."""
    if session.previous_hash is None or session.rotated_at is None:
        return None
    if not hmac.compare_digest(presented, session.previous_hash):
        return None
    ago = now - session.rotated_at
    if ago <= grace_s and session.next_sealed is not None:
        current = unseal(session.next_sealed, secret)
        if hmac.compare_digest(hash_key(current), session.token_hash):
            return Outcome(session, secret=current)
    return Outcome(session, reuse=Reuse(session, round(ago, 3)))


async def _retired(store: IdentityStore, session: Session, presented: str) -> Outcome:
    if await store.retired_session(presented) == session.id:
        return Outcome(session, reuse=Reuse(session, None))
    return Outcome(session)
