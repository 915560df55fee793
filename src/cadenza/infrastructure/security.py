"""Password hashing (scrypt, stdlib) and signed tokens (JWT, HS256)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time

import jwt

from cadenza.application.identity import TokenInvalid

_N, _R, _P = 2**14, 8, 1  # ~16 MiB and ~50 ms per hash on our machines


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


class ScryptHasher:
    """``scrypt$N$r$p$salt$hash``; run in a thread so a login does not stall the loop."""

    async def hash(self, password: str) -> str:
        salt = secrets.token_bytes(16)
        digest = await asyncio.to_thread(_scrypt, password, salt)
        b64 = base64.urlsafe_b64encode
        return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"

    async def verify(self, password: str, hashed: str) -> bool:
        try:
            _, n, r, p, salt, digest = hashed.split("$")
            raw_salt = base64.urlsafe_b64decode(salt)
            expected = base64.urlsafe_b64decode(digest)
        except ValueError:
            return False
        if (int(n), int(r), int(p)) != (_N, _R, _P):
            return False
        actual = await asyncio.to_thread(_scrypt, password, raw_salt)
        return hmac.compare_digest(actual, expected)


class JwtCodec:
    def __init__(self, secret: str, issuer: str = "cadenza") -> None:
        if len(secret) < 32:
            raise ValueError("the token signing secret must have at least 32 characters")
        self._secret = secret
        self._issuer = issuer

    def issue(self, claims: dict[str, object], ttl_s: float) -> str:
        now = int(time.time())
        body = {**claims, "iat": now, "exp": now + int(ttl_s), "iss": self._issuer}
        return jwt.encode(body, self._secret, algorithm="HS256")

    def decode(self, token: str) -> dict[str, object]:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenInvalid("invalid signature") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"malformed ({exc})") from exc
        return claims
