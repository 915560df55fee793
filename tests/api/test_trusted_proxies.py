"""The client address behind a reverse proxy (``trusted_proxies``), over the real server: the
test client stands for the proxy (it connects from 127.0.0.1 and sends the X-Forwarded-For
a proxy would). Only a trusted peer's header counts, and only its part right of the proxies."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api.harness import ADMIN_PASSWORD, Client, Reply, serve
from tests.logs import json_log_lines

WRONG = {"username": "admin", "password": "not-the-password"}
RIGHT = {"username": "admin", "password": ADMIN_PASSWORD}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    with json_log_lines("DEBUG") as stream:
        yield stream


async def login(c: Client, forwarded_for: str, body: dict[str, str], rid: str = "") -> Reply:
    headers = {"X-Forwarded-For": forwarded_for}
    if rid:
        headers["X-Request-Id"] = rid
    return await c.post("/api/v1/auth/login", body, headers=headers)


def client_ips(stream: io.StringIO, rid: str) -> set[str]:
    """The ``client_ip`` of every log line of request ``rid``."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return {line["client_ip"] for line in lines if line.get("request_id") == rid}


async def test_clients_behind_a_trusted_proxy_get_their_own_login_budget(
    sqlite_url: str, json_logs: io.StringIO
) -> None:
    async with serve(sqlite_url, login_rate_limit="3/minute", trusted_proxies=["127.0.0.1"]) as srv:
        a = srv.anonymous
        # client 1 spends its 3 attempts (with wrong passwords), the 4th is refused
        for n in range(3):
            assert (await login(a, "198.51.100.1", WRONG, f"one-{n}")).status == 401
        assert (await login(a, "198.51.100.1", RIGHT)).status == 429
        # client 2, behind the same proxy, still has all of its own
        for _ in range(2):
            assert (await login(a, "198.51.100.2", WRONG)).status == 401
        assert (await login(a, "198.51.100.2", RIGHT, "two")).status == 200
        # a client cannot escape by sending its own X-Forwarded-For: the proxy appends the
        # address it saw, and only the part right of the trusted proxies counts
        spoofed = await login(a, "203.0.113.9, 198.51.100.1", RIGHT, "spoofed")
        assert spoofed.status == 429
        # the proxy's own requests (no header) are the proxy's: serve() signed in once so far
        assert (await a.post("/api/v1/auth/login", RIGHT)).status == 200
    assert client_ips(json_logs, "one-0") == {"198.51.100.1"}
    assert client_ips(json_logs, "two") == {"198.51.100.2"}
    assert client_ips(json_logs, "spoofed") == {"198.51.100.1"}


@pytest.mark.parametrize(
    "trusted", [[], ["10.0.0.0/8", "::1"]], ids=["nothing-trusted", "another-proxy-trusted"]
)
async def test_an_untrusted_peers_forwarded_for_is_ignored(
    sqlite_url: str, json_logs: io.StringIO, trusted: list[str]
) -> None:
    async with serve(sqlite_url, login_rate_limit="3/minute", trusted_proxies=trusted) as srv:
        a = srv.anonymous
        # serve() signed in once from 127.0.0.1: two attempts left, whatever the header says
        assert (await login(a, "198.51.100.1", WRONG, "first")).status == 401
        assert (await login(a, "198.51.100.2", WRONG)).status == 401
        assert (await login(a, "198.51.100.3", RIGHT)).status == 429
    assert client_ips(json_logs, "first") == {"127.0.0.1"}
