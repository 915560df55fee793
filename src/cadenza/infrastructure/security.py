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

# OWASP's minimum for scrypt: N=2^17, r=8, p=1 (128 MiB and ~0.3 s per hash on our machines).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
MAX_PARALLEL_HASHES = 2  # hashes at once per process: each holds 128 * r * N bytes (128 MiB)
# a stored hash whose parameters need more memory or work is refused, not computed
_MAX_MEMORY, _MAX_P = 2**28, 16


def _usable(n: int, r: int, p: int) -> bool:
    power_of_two = n >= 2 and n & (n - 1) == 0
    return power_of_two and r >= 1 and 128 * r * n <= _MAX_MEMORY and 1 <= p <= _MAX_P


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=32)


class ScryptHasher:
    """``scrypt$N$r$p$salt$hash``; run in a thread so a login does not stall the loop, at
    most ``MAX_PARALLEL_HASHES`` at once so logins cannot exhaust memory. Hashes made with
    other parameters still verify, and ``needs_rehash`` says to re-make them (at login).
    ``n`` below the default is for tests only (``CADENZA_PASSWORD_HASH_N``)."""

    def __init__(self, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> None:
        if not _usable(n, r, p):
            raise ValueError(f"scrypt parameters N={n} r={r} p={p}: N must be a power of two")
        self._params = (n, r, p)
        self._slots = asyncio.Semaphore(MAX_PARALLEL_HASHES)

    async def _run(self, password: str, salt: bytes, params: tuple[int, int, int]) -> bytes:
        async with self._slots:
            return await asyncio.to_thread(_scrypt, password, salt, *params)

    async def hash(self, password: str) -> str:
        salt = secrets.token_bytes(16)
        digest = await self._run(password, salt, self._params)
        b64 = base64.urlsafe_b64encode
        n, r, p = self._params
        return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"

    async def verify(self, password: str, hashed: str) -> bool:
        try:
            _, n, r, p, salt, digest = hashed.split("$")
            params = (int(n), int(r), int(p))
            raw_salt = base64.urlsafe_b64decode(salt)
            expected = base64.urlsafe_b64decode(digest)
        except ValueError:
            return False
        if not _usable(*params):
            return False
        actual = await self._run(password, raw_salt, params)
        return hmac.compare_digest(actual, expected)

    def needs_rehash(self, hashed: str) -> bool:
        return not hashed.startswith("scrypt${}${}${}$".format(*self._params))


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
