"""Gateway checks as one ASGI middleware: request id, Host, Origin, body size, content type.

Pure ASGI (no BaseHTTPMiddleware) so streaming responses pass through untouched.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenza.application.audit import ORIGIN, Origin
from cadenza.interfaces.api.problems import MEDIA_TYPE

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_EXEMPT_TYPES = ("/mcp", "/graphql")  # these speak their own protocols
# Headers that must appear at most once: with two, the gateway and the framework (or a proxy
# in front) could each read a different one (e.g. check one Host and route by the other).
SINGLE_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "origin",
        "authorization",
        "x-api-key",
        "x-workspace",
    }
)


def _repeated(raw: Iterable[tuple[bytes, bytes]]) -> str | None:
    seen: set[str] = set()
    for key, _ in raw:
        name = key.decode("latin-1").lower()
        if name in SINGLE_HEADERS:
            if name in seen:
                return name
            seen.add(name)
    return None


async def _reject(send: Send, status: int, title: str, detail: str, rid: str) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"x-request-id", rid.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


# Probes and scrapes come from the orchestrator and Prometheus by pod IP, not by the public
# name: these GETs answer under any Host. They carry no session (the Host check guards
# browsers against DNS rebinding) and /metrics needs its own bearer token.
ANY_HOST_PATHS = frozenset({"/health", "/health/readiness", "/metrics"})


def _host(value: str) -> str:
    if value.startswith("["):  # [::1]:8080
        return value[1 : value.find("]")]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _probe(scope: Scope) -> bool:
    return scope["method"] in ("GET", "HEAD") and scope["path"] in ANY_HOST_PATHS


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Iterable[str],
        allowed_origins: Iterable[str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.hosts = frozenset(allowed_hosts)
        self.origins = frozenset(allowed_origins)
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")[:64] or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        repeated = _repeated(scope["headers"])
        if repeated is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _reject(send, 400, "Bad request", f"more than one {repeated} header", rid)
            return
        host = _host(headers.get("host", ""))
        if (
            "*" not in self.hosts
            and host not in self.hosts
            and not (scope["type"] == "http" and _probe(scope))
        ):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _reject(send, 400, "Bad request", f"host {host!r} is not allowed", rid)
            return
        origin = headers.get("origin")
        if origin and not self._origin_ok(origin, headers.get("host", ""), scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _reject(send, 403, "Forbidden", f"origin {origin!r} is not allowed", rid)
            return
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            problem = self._body_problem(headers, scope["path"])
            if problem is not None:
                await _reject(send, problem[0], problem[1], problem[2], rid)
                return
            receive = self._limited(receive)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        client = scope.get("client")
        origin = ORIGIN.set(Origin(rid, str(client[0]) if client else None))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            ORIGIN.reset(origin)

    def _origin_ok(self, origin: str, host: str, scope: Scope) -> bool:
        """Same-origin requests and configured CORS origins pass; others are refused."""
        scheme = "wss" if scope.get("scheme") in ("https", "wss") else "ws"
        same = {f"http://{host}", f"https://{host}", f"{scheme}://{host}"}
        return origin in same or origin in self.origins or "*" in self.origins

    def _body_problem(self, headers: dict[str, str], path: str) -> tuple[int, str, str] | None:
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return 413, "Request body too large", f"the limit is {self.max_body} bytes"
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and not path.startswith(_EXEMPT_TYPES) and ctype not in _JSON_TYPES:
            return (
                415,
                "Unsupported media type",
                f"send the body as application/json (got {ctype or 'no content type'!r})",
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return wrapped


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the limit of {limit} bytes")
