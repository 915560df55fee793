"""The ops port of a service process that is not the API (``cadenza worker``, ``cadenza
agents``, the MCP proxy): ``GET /health``, ``GET /health/readiness`` and ``GET /metrics``.

A small HTTP/1.1 server on asyncio streams, with no web framework: a worker's start-up time is
its recovery time, and it must not import the API stack. One request per connection (each
answer says ``Connection: close``); probes and scrapers open a connection per request anyway.
Everything else answers 404 (405 for another method on a known path).

Bounds (named below, listed in docs/_parts/roles.md): the request line and each header line
are at most ``MAX_LINE_BYTES``, the head at most ``MAX_HEAD_BYTES`` and ``MAX_HEADERS`` lines,
all of it within ``READ_TIMEOUT_S``; at most ``MAX_CONNECTIONS`` connections are served at
once (more are answered 503 and closed); a request body is never read.

``/metrics`` answers only ``Authorization: Bearer <metrics_token>`` (compared in constant
time); with no token configured it answers 404 and says how to turn it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cadenza.application.readiness import Readiness

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8 * 1024  # the request line, and each header line
MAX_HEAD_BYTES = 32 * 1024  # request line and headers together
MAX_HEADERS = 64
READ_TIMEOUT_S = 10.0  # for the whole request head, from the connection's start
WRITE_TIMEOUT_S = 10.0  # for the answer to drain to a slow reader
LINGER_S = 1.0  # after answering, unread request bytes are discarded this long (see _send)
LINGER_BYTES = 64 * 1024  # ... up to this many
MAX_CONNECTIONS = 32

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_OFF = (
    "/metrics is off on this port: set CADENZA_METRICS_TOKEN (at least 32 characters) and "
    "scrape with 'Authorization: Bearer <token>'\n"
)
_PATHS = ("/health", "/health/readiness", "/metrics")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``authorization`` is ``Bearer <token>``; constant time in the credential's content.
    An empty ``token`` matches nothing."""
    if not token or not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, body: object) -> _Answer:
    return _Answer(status, json.dumps(body).encode() + b"\n")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OpsServer:
    """The listening server; ``port`` is the bound one (useful when asked for port 0)."""

    def __init__(
        self,
        readiness: Callable[[], Awaitable[Readiness]],
        metrics_text: Callable[[], bytes],
        token: str,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._readiness = readiness
        self._metrics_text = metrics_text
        self._token = token
        self._refresh = refresh  # counts the system-wide gauges before a scrape
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "not listening"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        """Connections being served now (at most ``MAX_CONNECTIONS``)."""
        return len(self._connections)

    async def listen(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=MAX_LINE_BYTES, backlog=MAX_CONNECTIONS
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---- one connection ----------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.open_connections >= MAX_CONNECTIONS:
            await _send(reader, writer, _json(503, {"error": "too many connections"}))
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()  # idempotent; here for a connection cut short (close, errors)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                method, path, headers = await _read_head(reader)
        except TimeoutError:
            await _send(reader, writer, _json(408, {"error": "request head not received in time"}))
            return
        except _BadRequest as exc:
            await _send(reader, writer, _json(exc.status, {"error": str(exc)}))
            return
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            return
        try:
            answer = await self._answer(method, path, headers)
        except Exception:  # a bug in a probe must not kill the server; the client learns it
            log.exception("ops request %s %s failed", method, path)
            answer = _json(503, {"error": "internal error"})
        await _send(reader, writer, answer, head_only=method == "HEAD")

    async def _answer(self, method: str, path: str, headers: dict[str, str]) -> _Answer:
        path = path.split("?", 1)[0]
        if path not in _PATHS:
            return _json(404, {"error": "not found", "paths": list(_PATHS)})
        if method not in ("GET", "HEAD"):
            return _Answer(405, b"", headers=(("Allow", "GET, HEAD"),))
        if path == "/health":
            return _json(200, {"status": "ok"})
        if path == "/health/readiness":
            report = await self._readiness()
            return _json(200 if report.ready else 503, report.body())
        if not self._token:
            return _Answer(404, METRICS_OFF.encode(), "text/plain; charset=utf-8")
        if not bearer_matches(headers.get("authorization"), self._token):
            challenge = (("WWW-Authenticate", 'Bearer realm="metrics"'),)
            return _Answer(401, b"metrics token required\n", "text/plain", challenge)
        if self._refresh is not None:
            await self._refresh()
        return _Answer(200, self._metrics_text(), METRICS_TYPE)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers with lower-case names) of one request head, within bounds."""
    request_line = await _read_line(reader)
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    size = len(request_line)
    while True:
        line = await _read_line(reader)
        if not line:
            return method, target, headers
        size += len(line)
        if size > MAX_HEAD_BYTES or len(headers) >= MAX_HEADERS:
            raise _BadRequest(431, "request head too large")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, "malformed header line")
        headers[name.lower()] = value.strip()


async def _read_line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest(
            431, f"a line of the request head exceeds {MAX_LINE_BYTES} bytes"
        ) from exc
    try:
        return raw.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise _BadRequest(400, "the request head is not ASCII") from exc


async def _send(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answer: _Answer,
    *,
    head_only: bool = False,
) -> None:
    """Answer, then close gracefully: the write side is shut first and what the client still
    sends (a body, or a request refused before it was read) is read and dropped for a moment,
    since closing with unread bytes resets the connection and the client may lose the answer."""
    reason = _REASONS.get(answer.status, "")
    lines = [
        f"HTTP/1.1 {answer.status} {reason}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(answer.body)}",
        "Connection: close",
        "Cache-Control: no-store",
        *(f"{k}: {v}" for k, v in answer.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    with contextlib.suppress(ConnectionError, TimeoutError):
        writer.write(head if head_only else head + answer.body)
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_S):
            left = LINGER_BYTES
            while left > 0 and (chunk := await reader.read(min(left, 16 * 1024))):
                left -= len(chunk)
    writer.close()
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await writer.wait_closed()


async def serve_ops(
    host: str,
    port: int,
    readiness: Callable[[], Awaitable[Readiness]],
    metrics_text: Callable[[], bytes],
    token: str,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> OpsServer:
    """Listen on ``host:port`` (0: a free port, see ``OpsServer.port``) until ``close``;
    ``refresh`` runs before each authorised scrape (the store-counted gauges)."""
    server = OpsServer(readiness, metrics_text, token, refresh)
    await server.listen(host, port)
    return server
