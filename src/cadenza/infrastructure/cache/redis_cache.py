"""The shared cache on Redis (``redis://[:password@]host:port/db``, ``rediss://`` for TLS).

Every key gets ``KEY_PREFIX``; values larger than ``max_value_bytes`` are not stored. The
cache never fails a caller: a Redis error is logged once per outage, the call answers as a
miss, and for ``RETRY_AFTER_S`` after an error the cache is not asked at all (a down Redis
would otherwise add a connect timeout to every request).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio
from redis.exceptions import RedisError

KEY_PREFIX = "cadenza:cache:"
CONNECT_TIMEOUT_S = 0.5  # connecting to Redis; a cache that slow is skipped
COMMAND_TIMEOUT_S = 0.5  # one command's reply
RETRY_AFTER_S = 5.0  # after an error, the cache is skipped (misses) this long

log = logging.getLogger(__name__)
T = TypeVar("T")


def redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisCache:
    def __init__(
        self,
        url: str,
        max_value_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
        )
        self._url = redacted(url)
        self._max_value_bytes = max_value_bytes
        self._clock = clock
        self._down_until: float | None = None  # set while the cache is skipped after an error

    @property
    def shared(self) -> bool:
        return True

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        if self._down_until is not None and self._clock() < self._down_until:
            return None
        try:
            result = await call()
        except (RedisError, OSError) as exc:
            if self._down_until is None:
                log.warning("cache %s unavailable, reading the database: %s", self._url, exc)
            self._down_until = self._clock() + RETRY_AFTER_S
            return None
        if self._down_until is not None:
            log.info("cache %s is back", self._url)
            self._down_until = None
        return result

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self._redis.get(KEY_PREFIX + key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self._max_value_bytes:
            return
        ttl_ms = max(1, int(ttl_s * 1000))
        await self._call(lambda: self._redis.set(KEY_PREFIX + key, value, px=ttl_ms))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self._redis.delete(KEY_PREFIX + key))

    async def incr(self, key: str) -> int | None:
        value = await self._call(lambda: self._redis.incr(KEY_PREFIX + key))
        return value if isinstance(value, int) else None

    async def aclose(self) -> None:
        await self._redis.aclose()
