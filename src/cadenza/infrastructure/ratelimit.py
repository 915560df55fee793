"""Rate limits with the ``limits`` library: in process memory, or in Redis shared by processes.

The API asks ``hit(bucket, key)`` per request; this adapter answers with a moving window (exact:
never more than N hits in any period) so that ``Retry-After`` is the time until the oldest hit
in the window leaves it. With Redis, every API process counts against the same budget.

If Redis cannot be reached the limiter *fails open*: the request is allowed. Limits protect
capacity, they are not authentication; turning a Redis outage into an outage of the whole API
(logins included) would be the worse failure. While Redis is away, one request per backoff
window (``RETRY_INITIAL_S``, doubling to ``RETRY_MAX_S``) asks it again and the others do not,
so an outage costs neither an error nor a timeout per request; the first answer ends the outage
and requests are counted again (in a Redis that restarted empty, from zero). The outage is
logged once when it begins and once when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import limits
import redis.asyncio
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

log = logging.getLogger(__name__)

RETRY_INITIAL_S = 0.1  # after a storage failure, allow without asking Redis for this long
RETRY_MAX_S = 5.0  # the window doubles per failed retry up to this
_SOCKET_TIMEOUT_S = 1.0  # a hung Redis must not hang requests
_KEY_PREFIX = "cadenza-limits"
# Redis URL schemes we accept, and the scheme ``limits`` knows each by
_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


class RateLimitConfigError(ValueError):
    """A rate-limit setting that cannot be used; the message names the setting."""


class LimitSettings(Protocol):
    """The settings this module reads (``cadenza.settings.Settings`` has them)."""

    @property
    def rate_limit(self) -> str: ...
    @property
    def login_rate_limit(self) -> str: ...
    @property
    def redis_url(self) -> str: ...


def parse_limit(setting: str, value: str) -> limits.RateLimitItem:
    """One ``COUNT/PERIOD`` limit such as ``1200/minute``; a clear error naming ``setting``."""
    hint = (
        f"setting {setting} (CADENZA_{setting.upper()}) is {value!r}; expected one limit "
        "written COUNT/PERIOD, e.g. '1200/minute', '20/minute', '10/second' or '5000/hour'"
    )
    try:
        items = limits.parse_many(value)
    except ValueError as exc:
        raise RateLimitConfigError(f"{hint}: {exc}") from None
    if len(items) != 1:
        raise RateLimitConfigError(hint)
    if items[0].amount < 1:
        raise RateLimitConfigError(f"{hint}: the count must be at least 1")
    return items[0]


class LimitsRateLimiter:
    """``hit(bucket, key)`` over a ``limits`` storage; one limit per bucket."""

    def __init__(
        self,
        buckets: Mapping[str, limits.RateLimitItem],
        storage: Storage,
        close: Callable[[], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = dict(buckets)
        self._strategy = MovingWindowRateLimiter(storage)
        self._close = close
        self._monotonic = monotonic
        self._down_until = 0.0  # monotonic time until which storage failures fail open
        self._window = 0.0  # the current fail-open window; 0 while the storage answers
        self._down_since = 0.0

    @property
    def available(self) -> bool:
        """False while the storage is unreachable and requests are allowed unlimited."""
        return self._window == 0.0

    async def hit(self, bucket: str, key: str) -> float | None:
        """None when allowed; else seconds until the caller may try again."""
        item = self._buckets[bucket]  # an unknown bucket is a programming error: KeyError
        if self._window and self._monotonic() < self._down_until:
            return None
        try:
            allowed = await self._strategy.hit(item, bucket, key)
            stats = None if allowed else await self._strategy.get_window_stats(item, bucket, key)
        except StorageError as exc:
            self._failed(exc)
            return None
        if self._window:
            log.warning(
                "rate-limit storage reachable again after %.1fs: requests are limited again",
                self._monotonic() - self._down_since,
            )
            self._window = 0.0
        if stats is None:
            return None
        # reset_time is when the oldest hit leaves the window (wall clock, as limits keeps it)
        return max(stats.reset_time - time.time(), 0.0)

    def _failed(self, exc: StorageError) -> None:
        now = self._monotonic()
        if not self._window:
            self._down_since = now
            log.warning(
                "rate-limit storage unreachable (%s: %s): allowing requests unlimited until it "
                "answers again (asked again at most every %gs)",
                type(exc.storage_error).__name__,
                exc.storage_error,
                RETRY_MAX_S,
            )
        self._window = min(self._window * 2, RETRY_MAX_S) if self._window else RETRY_INITIAL_S
        self._down_until = now + self._window

    async def close(self) -> None:
        """Release the storage's connections (Redis); nothing to do in memory."""
        if self._close is not None:
            await self._close()


def _redis_storage(setting: str, url: str) -> tuple[Storage, Callable[[], Awaitable[None]]]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise RateLimitConfigError(
            f"setting {setting} (CADENZA_{setting.upper()}) must start with redis://, "
            f"rediss:// or unix:// (got scheme {scheme!r})"
        )
    pool = redis.asyncio.ConnectionPool.from_url(
        url, socket_timeout=_SOCKET_TIMEOUT_S, socket_connect_timeout=_SOCKET_TIMEOUT_S
    )
    storage = RedisStorage(
        f"{_SCHEMES[scheme]}://{rest}",
        wrap_exceptions=True,  # any client error arrives as StorageError: fail open on it
        implementation="redispy",
        key_prefix=_KEY_PREFIX,
        # a documented option of RedisStorage; its **options annotation is narrower: we own
        # the pool so that close() can release it
        connection_pool=pool,  # type: ignore[arg-type]
    )
    return storage, pool.aclose


def build_limiter(
    settings: LimitSettings, monotonic: Callable[[], float] = time.monotonic
) -> LimitsRateLimiter:
    """The API's limiter: bucket ``api`` per principal, ``login`` per client address.

    Raises ``RateLimitConfigError`` at start-up for a setting that cannot be used. Nothing
    connects here: Redis is reached on the first request.
    """
    buckets = {
        "api": parse_limit("rate_limit", settings.rate_limit),
        "login": parse_limit("login_rate_limit", settings.login_rate_limit),
    }
    if not settings.redis_url:
        return LimitsRateLimiter(buckets, MemoryStorage(), monotonic=monotonic)
    storage, close = _redis_storage("redis_url", settings.redis_url)
    return LimitsRateLimiter(buckets, storage, close, monotonic)
