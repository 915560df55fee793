"""The observability middleware, driven as plain ASGI: route templates, metrics, spans joined
to the caller's ``traceparent``, the log context, and no second span under FastAPI's own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from cadenza.interfaces.api.observe import UNMATCHED, ObserveMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
Observed = list[tuple[str, str, int, float]]


async def call(app: Any, path: str, headers: dict[str, str] | None = None) -> list[Message]:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "state": {"request_id": "rid-1"},  # set by GatewayMiddleware in the real stack
    }
    sent: list[Message] = []
    done = False

    async def receive() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _app(observed: Observed, provider: TracerProvider, *, framework_spans: bool) -> FastAPI:
    telemetry: Any = {"tracer_provider": provider, "operation_spans": False}
    app = FastAPI(telemetry=telemetry if framework_spans else {"tracing": False})
    seen: dict[str, object] = {}
    app.state.seen = seen

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        seen.update(structlog.contextvars.get_contextvars())
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(
        ObserveMiddleware,
        on_request=lambda *args: observed.append(args),
        tracer=provider.get_tracer("test"),
    )
    return app


async def test_route_template_metrics_and_a_span_joined_to_the_callers_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observed: Observed = []
    app = _app(observed, provider, framework_spans=False)
    sent = await call(app, "/items/42", {"traceparent": TRACEPARENT})
    assert sent[0]["status"] == 200
    [(method, route, status, seconds)] = observed
    assert (method, route, status) == ("GET", "/items/{item_id}", 200)
    assert 0 <= seconds < 5
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is trace.SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert span.parent.is_remote
    assert span.attributes is not None
    assert span.attributes["cadenza.request_id"] == "rid-1"
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["client.address"] == "127.0.0.1"
    # the handler ran with the request and trace ids and the client in the log context
    assert app.state.seen == {"request_id": "rid-1", "trace_id": TRACE_ID, "client_ip": "127.0.0.1"}


async def test_unknown_paths_share_one_route_label(provider: TracerProvider) -> None:
    observed: Observed = []
    app = _app(observed, provider, framework_spans=False)
    await call(app, "/no/such/thing")
    await call(app, "/another/one")
    assert [(r, s) for _, r, s, _ in observed] == [(UNMATCHED, 404), (UNMATCHED, 404)]


async def test_a_failing_handler_is_a_500_and_an_error_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observed: Observed = []
    app = _app(observed, provider, framework_spans=False)
    with pytest.raises(RuntimeError, match="boom"):
        await call(app, "/boom")
    assert [(r, s) for _, r, s, _ in observed] == [("/boom", 500)]
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR


async def test_fastapis_own_server_span_is_tagged_not_doubled(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observed: Observed = []
    app = _app(observed, provider, framework_spans=True)
    await call(app, "/items/7", {"traceparent": TRACEPARENT})
    [span] = exporter.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "fastapi"
    assert span.attributes is not None
    assert span.attributes["cadenza.request_id"] == "rid-1"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert [(r, s) for _, r, s, _ in observed] == [("/items/{item_id}", 200)]


async def test_mounted_apps_keep_their_prefix(provider: TracerProvider) -> None:
    async def hello(_: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("raw")(scope, receive, send)

    inner = Starlette(routes=[Route("/things/{thing_id}", hello)])
    outer = Starlette(routes=[Mount("/sub", app=inner), Mount("/raw", app=raw)])
    observed: Observed = []
    app = ObserveMiddleware(
        outer, on_request=lambda *args: observed.append(args), tracer=provider.get_tracer("t")
    )
    await call(app, "/sub/things/9")
    await call(app, "/raw/anything")
    assert [r for _, r, _, _ in observed] == ["/sub/things/{thing_id}", "/raw"]
