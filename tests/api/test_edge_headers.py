"""Security regression tests (issue 9, Low): security headers on every response, and
requests with a repeated Host (or other single-valued) header refused."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.api.harness import serve

from cadenza.interfaces.api.headers import CONSOLE_CSP


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def assert_common(headers: Mapping[str, str]) -> None:
    assert {k: headers.get(k) for k in COMMON} == COMMON


async def test_every_kind_of_response_carries_the_security_headers(url: str) -> None:
    async with serve(url) as srv:
        replies = [
            await srv.anonymous.get("/health"),  # public
            await srv.admin.get("/api/v1/me"),  # authenticated 200
            await srv.anonymous.get("/api/v1/me"),  # 401
            await srv.admin.get("/api/v1/processes/instances/nope"),  # 404 problem
            await srv.admin.get("/api/v1/me", headers={"Host": "evil.example"}),  # gateway 400
            await srv.admin.post("/graphql", {"query": "{ processes { id } }"}),
        ]
        assert [r.status for r in replies] == [200, 200, 401, 404, 400, 200]
        for r in replies:
            assert_common(r.headers)
            assert r.headers["Content-Security-Policy"] == CONSOLE_CSP
        assert "frame-ancestors 'none'" in CONSOLE_CSP
        assert "script-src 'self';" in CONSOLE_CSP


async def test_an_unexpected_error_page_carries_them_too(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The 500 page is sent by Starlette's outermost error middleware, outside every
    ``add_middleware``: the headers are wrapped around that too."""
    async with serve(url) as srv:

        async def broken(*_: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(srv.app.state.services.processes, "all", broken)
        with caplog.at_level("CRITICAL"):
            r = await srv.admin.get("/api/v1/processes/definitions")
        assert r.status == 500
        assert_common(r.headers)
        assert r.headers["Content-Security-Policy"] == CONSOLE_CSP


async def raw_request(base: str, head: str, body: str = "") -> tuple[int, str]:
    """Send a hand-written HTTP/1.1 request (clients refuse to repeat Host)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body.encode())
    await writer.drain()
    answer = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    status = int(answer.split(" ", 2)[1])
    return status, answer.split("\r\n\r\n", 1)[1]


async def test_two_host_headers_are_refused(url: str) -> None:
    async with serve(url) as srv:
        token = srv.admin.token
        one = "GET /api/v1/me HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n"
        auth = f"Authorization: Bearer {token}\n"
        assert (await raw_request(srv.base, one + auth))[0] == 200
        for second in ("Host: evil.example\n", "Host: 127.0.0.1\n"):
            status, body = await raw_request(srv.base, one + second + auth)
            assert status == 400
            assert '"detail": "more than one host header"' in body


async def test_repeated_length_and_credential_headers_are_refused(url: str) -> None:
    async with serve(url) as srv:
        base = "GET /api/v1/me HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n"
        token = f"Authorization: Bearer {srv.admin.token}\n"
        status, body = await raw_request(srv.base, base + token + token)
        assert (status, '"detail": "more than one authorization header"' in body) == (400, True)
        ws = "X-Workspace: default\n"
        status, body = await raw_request(srv.base, base + token + ws + ws)
        assert (status, '"detail": "more than one x-workspace header"' in body) == (400, True)
        post = (
            "POST /api/v1/processes/definitions/validate HTTP/1.1\nHost: 127.0.0.1\n"
            "Connection: close\nContent-Type: application/json\n"
            "Content-Length: 2\nContent-Length: 2\n" + token
        )
        status, _ = await raw_request(srv.base, post, "{}")
        assert status == 400
