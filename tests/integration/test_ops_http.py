"""The ops port (``interfaces.ops_http``) over real sockets: its three routes, the metrics
token, and its bounds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cadenza.application.readiness import Readiness
from cadenza.interfaces import ops_http
from cadenza.interfaces.ops_http import METRICS_OFF, OpsServer, bearer_matches, serve_ops

TOKEN = "t" * 40
METRICS = b"# TYPE up gauge\nup 1.0\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class State:
    def __init__(self) -> None:
        self.report = Readiness("worker", {"database": "ok", "engine": "ok"})

    async def readiness(self) -> Readiness:
        return self.report


async def _open(state: State, token: str = TOKEN) -> OpsServer:
    return await serve_ops("127.0.0.1", 0, state.readiness, lambda: METRICS, token)


@pytest.fixture
async def state() -> State:
    return State()


@pytest.fixture
async def server(state: State) -> AsyncIterator[OpsServer]:
    srv = await _open(state)
    try:
        yield srv
    finally:
        await srv.close()


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read()  # the server closes after one answer
    writer.close()
    await writer.wait_closed()
    return answer


def _parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("ascii").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    assert int(headers["content-length"]) == len(body)
    return Answer(int(status_line.split(" ")[1]), headers, body)


async def _get(port: int, path: str, **headers: str) -> Answer:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", *(f"{k}: {v}" for k, v in headers.items())]
    return _parse(await _raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode()))


async def test_health_answers_ok_and_closes_the_connection(server: OpsServer) -> None:
    r = await _get(server.port, "/health")
    assert (r.status, r.json(), r.headers["connection"]) == (200, {"status": "ok"}, "close")


async def test_readiness_says_the_role_and_what_is_not_ready(
    server: OpsServer, state: State
) -> None:
    r = await _get(server.port, "/health/readiness")
    checks = {"database": "ok", "engine": "ok"}
    assert (r.status, r.json()) == (200, {"status": "ok", "role": "worker", "checks": checks})
    state.report = Readiness(
        "agents", {"database": "unreachable: OSError"}, False, {"health_checked_at": None}
    )
    r = await _get(server.port, "/health/readiness")
    assert r.status == 503
    assert r.json() == {
        "status": "unavailable",
        "role": "agents",
        "leader": False,
        "health_checked_at": None,
        "checks": {"database": "unreachable: OSError"},
    }


async def test_metrics_answer_only_the_metrics_token(server: OpsServer) -> None:
    r = await _get(server.port, "/metrics", Authorization=f"Bearer {TOKEN}")
    assert (r.status, r.body, r.headers["content-type"]) == (200, METRICS, ops_http.METRICS_TYPE)
    assert (await _get(server.port, "/metrics")).status == 401
    wrong = await _get(server.port, "/metrics", Authorization=f"Bearer {TOKEN[:-1]}x")
    assert (wrong.status, wrong.headers["www-authenticate"]) == (401, 'Bearer realm="metrics"')
    basic = await _get(server.port, "/metrics", Authorization=f"Basic {TOKEN}")
    assert basic.status == 401


async def test_metrics_without_a_configured_token_answer_404_with_a_hint(state: State) -> None:
    srv = await _open(state, token="")
    try:
        r = await _get(srv.port, "/metrics", Authorization="Bearer ")
        assert (r.status, r.body.decode()) == (404, METRICS_OFF)
    finally:
        await srv.close()


async def test_other_paths_answer_404_and_other_methods_405(server: OpsServer) -> None:
    assert (await _get(server.port, "/")).status == 404
    assert (await _get(server.port, "/api/v1/processes")).status == 404
    assert (await _get(server.port, "/health?probe=1")).status == 200
    post = _parse(await _raw(server.port, b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
    assert (post.status, post.headers["allow"]) == (405, "GET, HEAD")


async def test_head_answers_headers_without_a_body(server: OpsServer) -> None:
    raw = await _raw(server.port, b"HEAD /health HTTP/1.1\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\n")


async def test_malformed_requests_answer_400(server: OpsServer) -> None:
    for data in (b"GET /health\r\n\r\n", b"GET /health HTTP/1.1\r\nno colon\r\n\r\n"):
        assert _parse(await _raw(server.port, data)).status == 400
    assert _parse(await _raw(server.port, b"GET /h\xff HTTP/1.1\r\n\r\n")).status == 400


async def test_a_line_over_the_limit_answers_431(server: OpsServer) -> None:
    long_path = "/" + "a" * ops_http.MAX_LINE_BYTES
    assert (await _get(server.port, long_path)).status == 431
    header = "b" * ops_http.MAX_LINE_BYTES
    assert (await _get(server.port, "/health", X=header)).status == 431


async def test_too_many_headers_or_too_large_a_head_answer_431(server: OpsServer) -> None:
    many = {f"X-{i}": "1" for i in range(ops_http.MAX_HEADERS + 1)}
    assert (await _get(server.port, "/health", **many)).status == 431
    count = ops_http.MAX_HEAD_BYTES // 4000 + 1  # each line within the line limit
    big = {f"X-{i}": "v" * 4000 for i in range(count)}
    assert (await _get(server.port, "/health", **big)).status == 431


async def test_a_head_not_received_in_time_answers_408(
    server: OpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_http, "READ_TIMEOUT_S", 0.2)
    answer = _parse(await _raw(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n"))  # no end
    assert answer.status == 408


async def test_connections_over_the_cap_answer_503_until_one_ends(
    server: OpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops_http, "MAX_CONNECTIONS", 2)
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    async with asyncio.timeout(10):
        while server.open_connections < 2:  # both accepted and being served
            await asyncio.sleep(0.01)
    assert (await _get(server.port, "/health")).status == 503
    _, first = idle.pop()
    first.close()  # ends a request head: the server answers it and frees the slot
    await first.wait_closed()
    async with asyncio.timeout(10):
        while server.open_connections > 1:
            await asyncio.sleep(0.01)
    assert (await _get(server.port, "/health")).status == 200
    for _, writer in idle:
        writer.close()


async def test_close_ends_open_connections(server: OpsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    async with asyncio.timeout(10):
        while server.open_connections < 1:
            await asyncio.sleep(0.01)
    await server.close()
    assert await reader.read() == b""
    writer.close()


def test_bearer_matches_only_the_exact_token() -> None:
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert bearer_matches(f"bearer  {TOKEN} ", TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN}x", TOKEN)
    assert not bearer_matches(None, TOKEN)
    assert not bearer_matches("Bearer ", "")  # no token configured: nothing matches
