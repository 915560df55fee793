"""The ``limits`` rate limiter, in memory and over a real Redis server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from tests.net import free_port

from cadenza.infrastructure.ratelimit import (
    LimitsRateLimiter,
    RateLimitConfigError,
    build_limiter,
)


@dataclass(frozen=True)
class Limits:
    rate_limit: str = "5/minute"
    login_rate_limit: str = "2/minute"
    redis_url: str = ""


Make = Callable[..., Awaitable[LimitsRateLimiter]]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """Build limiters on the parametrized storage; each is closed after the test."""
    url = "" if request.param == "memory" else request.getfixturevalue("redis_url")
    built: list[LimitsRateLimiter] = []

    async def build(**limits: str) -> LimitsRateLimiter:
        limiter = build_limiter(Limits(redis_url=url, **limits))
        built.append(limiter)
        return limiter

    yield build
    for limiter in built:
        await limiter.close()


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[tuple[LimitsRateLimiter, LimitsRateLimiter]]:
    """Two limiters, as in two API processes, over one Redis."""
    a, b = build_limiter(Limits(redis_url=redis_url)), build_limiter(Limits(redis_url=redis_url))
    yield a, b
    await a.close()
    await b.close()


def key() -> str:
    return f"user:{uuid.uuid4().hex}"


async def test_allows_up_to_the_limit_then_refuses(make: Make) -> None:
    limiter = await make(rate_limit="5/minute")
    caller = key()
    assert [await limiter.hit("api", caller) for _ in range(5)] == [None] * 5
    wait = await limiter.hit("api", caller)
    assert wait is not None
    assert 55 < wait <= 60  # the first hit leaves the one-minute window in about a minute


async def test_callers_and_buckets_have_separate_budgets(make: Make) -> None:
    limiter = await make(rate_limit="2/minute", login_rate_limit="1/minute")
    ada, bob = key(), key()
    assert await limiter.hit("api", ada) is None
    assert await limiter.hit("api", ada) is None
    assert await limiter.hit("api", ada) is not None
    assert await limiter.hit("api", bob) is None  # another principal
    assert await limiter.hit("login", ada) is None  # another bucket, its own limit
    assert await limiter.hit("login", ada) is not None


async def test_waiting_retry_after_lets_the_caller_in_again(make: Make) -> None:
    limiter = await make(rate_limit="2/second")
    caller = key()
    assert await limiter.hit("api", caller) is None
    assert await limiter.hit("api", caller) is None
    wait = await limiter.hit("api", caller)
    assert wait is not None
    assert 0 < wait <= 1
    await asyncio.sleep(wait + 0.05)
    assert await limiter.hit("api", caller) is None


async def test_refused_hits_do_not_extend_the_wait(make: Make) -> None:
    limiter = await make(rate_limit="1/second")
    caller = key()
    assert await limiter.hit("api", caller) is None
    first = await limiter.hit("api", caller)
    await asyncio.sleep(0.3)
    second = await limiter.hit("api", caller)
    assert first is not None
    assert second is not None
    assert second < first - 0.2  # the window moves on; refusals are not counted


async def test_two_limiters_on_one_redis_share_the_budget(
    shared: tuple[LimitsRateLimiter, LimitsRateLimiter],
) -> None:
    a, b = shared
    caller = key()
    assert [await a.hit("api", caller) for _ in range(3)] == [None] * 3
    assert [await b.hit("api", caller) for _ in range(2)] == [None] * 2
    assert await b.hit("api", caller) is not None
    assert await a.hit("api", caller) is not None


async def test_concurrent_hits_never_exceed_the_limit(make: Make) -> None:
    limiter = await make(rate_limit="10/minute")
    # Open the pool's connections first (on another caller's budget): 30 concurrent connects
    # to Redis on a loaded machine can pass the 1 s connect timeout, and a limiter that cannot
    # reach its storage fails open by design, which is not what this test is about.
    warm = key()
    await asyncio.gather(*(limiter.hit("api", warm) for _ in range(30)))
    caller = key()
    results = await asyncio.gather(*(limiter.hit("api", caller) for _ in range(30)))
    assert limiter.available  # the storage answered every hit
    assert sum(r is None for r in results) == 10


async def test_unreachable_redis_fails_open_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = build_limiter(
        Limits(rate_limit="1/minute", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    try:
        with caplog.at_level(logging.WARNING, logger="cadenza.infrastructure.ratelimit"):
            results = [await limiter.hit("api", "user:x") for _ in range(5)]
    finally:
        await limiter.close()
    assert results == [None] * 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # then Redis is left alone for a while, not retried per request
    assert "rate-limit storage unreachable" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        ({"rate_limit": "lots"}, "rate_limit"),
        ({"rate_limit": "5/fortnight"}, "rate_limit"),
        ({"rate_limit": "0/minute"}, "rate_limit"),
        ({"login_rate_limit": "1/second;100/hour"}, "login_rate_limit"),
        ({"login_rate_limit": ""}, "login_rate_limit"),
        ({"redis_url": "http://127.0.0.1:6379"}, "redis_url"),
        ({"redis_url": "127.0.0.1:6379"}, "redis_url"),
    ],
)
def test_unusable_settings_fail_at_start_with_the_setting_named(
    limits: dict[str, str], setting: str
) -> None:
    with pytest.raises(RateLimitConfigError, match=f"setting {setting} "):
        build_limiter(Limits(**limits))


def test_limit_strings_in_the_documented_forms_are_accepted() -> None:
    for value in ("1200/minute", "20 per minute", "10/second", "5000/hour", "100/2 seconds"):
        build_limiter(Limits(rate_limit=value))
