"""Per-request observability as one pure ASGI middleware: a server span joined to the caller's
trace (W3C ``traceparent``), the request metrics by route template, and a log context (request
id, trace id, client address).

FastAPI (>= 0.16x) makes the server span itself once a tracer provider is installed; then
this middleware only tags that span with the request id, so a request never gets two.

It runs inside ``GatewayMiddleware``, whose request id it reads from the scope's state; requests
the gateway refuses (bad Host or Origin, body limits) are not seen here.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import structlog
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cadenza.http")
RequestObserver = Callable[[str, str, int, float], None]  # method, route, status, seconds
UNMATCHED = "unmatched"  # the route label of a request no route answered (one label, not paths)
_W3C = TraceContextTextMapPropagator()


def route_of(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered (``/api/v1/instances/{instance_id}``), read
    after the app ran; ``root_path`` is the scope's before, so a mount's prefix is kept."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    now = str(scope.get("root_path", ""))
    prefix = now[len(root_path) :] if now.startswith(root_path) else ""
    if isinstance(route, Mount):  # a mounted app without routes of its own
        return prefix or path
    return f"{prefix}{path}" or "/"


class ObserveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        on_request: RequestObserver | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.app = app
        self.on_request = on_request
        self.tracer = tracer or trace.get_tracer("cadenza.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        request_id = str(scope.get("state", {}).get("request_id", ""))
        client_ip = _client_ip(scope)
        root_path = str(scope.get("root_path", ""))
        status = 500  # when the app fails before answering

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        framework = _framework_span(scope)
        with self._server_span(scope, method, framework) as span:
            span.set_attribute("cadenza.request_id", request_id)
            span.set_attribute("client.address", client_ip)
            trace_id = format(span.get_span_context().trace_id, "032x")
            with structlog.contextvars.bound_contextvars(
                request_id=request_id, trace_id=trace_id, client_ip=client_ip
            ):
                try:
                    await self.app(scope, receive, send_observed)
                finally:
                    route = route_of(scope, root_path)
                    seconds = time.perf_counter() - started
                    if framework is None:  # ours: FastAPI sets these on its own
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    if self.on_request is not None:
                        self.on_request(method, route, status, seconds)
                    log.debug("%s %s -> %d in %.1f ms", method, route, status, seconds * 1000.0)

    def _server_span(
        self, scope: Scope, method: str, framework: Span | None
    ) -> AbstractContextManager[Span]:
        """FastAPI's own server span when its telemetry made one (it does whenever a tracer
        provider is installed), else one of ours joined to the caller's ``traceparent``."""
        if framework is not None:
            return contextlib.nullcontext(framework)
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        return self.tracer.start_as_current_span(
            f"{method} {UNMATCHED}",
            context=_W3C.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        )


def _client_ip(scope: Scope) -> str:
    """The client's address as the server gives it: the TCP peer, or the forwarded address
    when the peer is a trusted proxy (``settings.trusted_proxies``, applied by uvicorn's
    proxy-headers middleware before the app runs)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def _framework_span(scope: Scope) -> Span | None:
    if scope.get("fastapi.telemetry") is None:
        return None
    span = trace.get_current_span()
    return span if span.is_recording() else None


def install(app: FastAPI, on_request: RequestObserver | None = None) -> None:
    """Add the middleware (an ``ApiServices.extra_mounts`` entry)."""
    app.add_middleware(ObserveMiddleware, on_request=on_request)
