"""Rate limits over the real server: 429 with Retry-After, per principal and per login IP."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio
from tests.api.harness import ADMIN_PASSWORD, Reply, Server, serve

from cadenza.application.identity import Principal, Role


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


@pytest.fixture(params=["memory", "redis"])
async def limit_storage(request: pytest.FixtureRequest) -> str:
    """``redis_url`` for the server: empty (in memory) or the session's Redis, emptied."""
    if request.param == "memory":
        return ""
    url: str = request.getfixturevalue("redis_url")
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.flushdb()  # the login bucket is keyed by 127.0.0.1 in every test
    finally:
        await client.aclose()
    return url


async def stored_keys(url: str) -> list[bytes | str]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        return list(await client.keys("cadenza-limits:*"))
    finally:
        await client.aclose()


def assert_limited(reply: Reply, longest_s: int) -> None:
    assert reply.status == 429, reply.body
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.body["status"] == 429
    assert reply.body["title"] == "Too many requests"
    assert "retry after" in reply.body["detail"]
    assert 1 <= int(reply.headers["Retry-After"]) <= longest_s


async def api_key(srv: Server) -> str:
    """A viewer key in the default workspace, made without spending the admin's budget."""
    identity = srv.app.state.services.identity
    admin = await identity.store.user_by_name("admin")
    owner = Principal("default", Role.ADMIN, user_id=admin.id, is_system_admin=True)
    _, secret = await identity.create_key(owner, "limits", Role.VIEWER, None)
    return str(secret)


async def test_a_caller_over_the_limit_gets_429_with_retry_after(
    sqlite_url: str, limit_storage: str
) -> None:
    async with serve(sqlite_url, rate_limit="5/minute", redis_url=limit_storage) as srv:
        for _ in range(5):
            assert (await srv.admin.get("/api/v1/me")).status == 200
        limited = await srv.admin.get("/api/v1/me")
        assert_limited(limited, 60)
        assert int(limited.headers["Retry-After"]) >= 55  # the first hit is a minute away
        # another principal has its own budget; public routes are not limited per principal
        keyed = srv.anonymous.as_(await api_key(srv))
        assert (await keyed.get("/api/v1/me")).status == 200
        assert (await srv.anonymous.get("/health")).status == 200
        # no credentials: authentication fails first, whatever the budget
        assert (await srv.anonymous.get("/api/v1/me")).status == 401
    if limit_storage:
        assert await stored_keys(limit_storage), "the server did not count in Redis"


async def test_login_attempts_are_limited_per_ip(sqlite_url: str, limit_storage: str) -> None:
    async with serve(sqlite_url, login_rate_limit="3/minute", redis_url=limit_storage) as srv:
        # serve() signed the admin in once; two wrong passwords use up the rest
        wrong = {"username": "admin", "password": "not-the-password"}
        for _ in range(2):
            assert (await srv.anonymous.post("/api/v1/auth/login", wrong)).status == 401
        right = {"username": "admin", "password": ADMIN_PASSWORD}
        assert_limited(await srv.anonymous.post("/api/v1/auth/login", right), 60)
        refresh = {"refresh_token": "whatever"}
        assert_limited(await srv.anonymous.post("/api/v1/auth/refresh", refresh), 60)
        # signed-in callers are limited by the API budget, not the login one
        assert (await srv.admin.get("/api/v1/me")).status == 200
