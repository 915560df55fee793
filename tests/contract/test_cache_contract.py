"""The shared-cache contract (``cadenza.application.ports_cache``) on every adapter: the
in-process reference and Redis; then what the Redis adapter does when Redis is down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import pytest

from cadenza.application.ports_cache import SharedCache, get_json, set_json
from cadenza.infrastructure.cache.memory import MemoryCache, NoCache
from cadenza.infrastructure.cache.redis_cache import RETRY_AFTER_S, RedisCache

MAX = 64


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[SharedCache]:
    made: SharedCache
    if request.param == "memory":
        made = MemoryCache(MAX)
    else:
        url: str = request.getfixturevalue("redis_url")
        made = RedisCache(url, MAX)
        await made.delete("k")
        await made.delete("n")
    yield made
    await made.aclose()


async def test_a_value_set_is_read_back_until_deleted(cache: SharedCache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", b"v1", 60)
    assert await cache.get("k") == b"v1"
    await cache.delete("k")
    assert await cache.get("k") is None


async def test_a_value_over_the_size_bound_is_not_stored(cache: SharedCache) -> None:
    await cache.set("k", b"x" * (MAX + 1), 60)
    assert await cache.get("k") is None
    await cache.set("k", b"x" * MAX, 60)
    assert await cache.get("k") == b"x" * MAX


async def test_a_counter_counts_and_reads_as_its_decimal_value(cache: SharedCache) -> None:
    assert [await cache.incr("n"), await cache.incr("n")] == [1, 2]
    assert await cache.get("n") == b"2"


async def test_json_values_round_trip_and_garbage_is_a_miss(cache: SharedCache) -> None:
    await set_json(cache, "k", {"a": [1, "b", None]}, 60)
    assert await get_json(cache, "k") == {"a": [1, "b", None]}
    await cache.set("k", b"{not json", 60)
    assert await get_json(cache, "k") is None


async def test_the_memory_cache_forgets_a_value_after_its_ttl() -> None:
    now = [0.0]
    cache = MemoryCache(MAX, clock=lambda: now[0])
    await cache.set("k", b"v", 10)
    now[0] = 9.9
    assert await cache.get("k") == b"v"
    now[0] = 10.0
    assert await cache.get("k") is None


async def test_the_no_op_cache_keeps_nothing() -> None:
    cache = NoCache()
    await cache.set("k", b"v", 60)
    assert (cache.shared, await cache.get("k"), await cache.incr("n")) == (False, None, None)


async def test_redis_down_reads_as_misses_logged_once_and_is_skipped_for_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    cache = RedisCache("redis://127.0.0.1:1/0", MAX, clock=clock)
    with caplog.at_level(logging.WARNING, logger="cadenza.infrastructure.cache.redis_cache"):
        assert await cache.get("k") is None
        await cache.set("k", b"v", 60)
        assert await cache.incr("n") is None
        now[0] = RETRY_AFTER_S  # asked again (and failing again): still one warning
        assert await cache.get("k") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "127.0.0.1:1" in warnings[0].getMessage()
    await cache.aclose()
