"""Metrics, traces and logs over a real server: ``/metrics`` after a run, one trace from an HTTP
request through the instance and its task to a model call on the fake OpenAI server (which
receives the ``traceparent``), and JSON log lines carrying the request and trace ids."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.api.harness import Client, document, serve
from tests.fakes.openai_server import FakeOpenAIServer
from tests.logs import json_log_lines

from cadenza.infrastructure.observability.tracer_provider import install_tracing
from cadenza.settings import ProviderSettings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'obs.db'}"


class HeaderLoggingOpenAI(FakeOpenAIServer):
    """The fake OpenAI server, also keeping each request's ``traceparent``."""

    def __init__(self) -> None:
        super().__init__()
        self.traceparents: list[str | None] = []

    async def handle(self, request: web.Request, answer: Any) -> web.StreamResponse:
        self.traceparents.append(request.headers.get("traceparent"))
        return await super().handle(request, answer)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Collect the spans of the process-wide provider (the one ``build`` installs)."""
    provider = install_tracing()
    assert trace.get_tracer_provider() is provider
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # processors cannot be removed; a shut-down exporter keeps nothing


async def _run(c: Client, doc: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    saved = await c.post("/api/v1/processes/definitions", {"document": doc})
    assert saved.status == 201, saved.body
    pid, version = doc["id"], saved.body["version"]
    published = await c.post(f"/api/v1/processes/definitions/{pid}/versions/{version}/publish")
    assert published.status == 200, published.body
    started = await c.post(
        "/api/v1/processes/instances",
        {"process_id": pid, "inputs": {"name": "Ada"}},
        headers=headers,
    )
    assert started.status == 201, started.body
    instance_id: str = started.body["id"]
    for _ in range(200):
        detail = await c.get(f"/api/v1/processes/instances/{instance_id}")
        if detail.body["status"] != "running":
            assert detail.body["status"] == "completed", detail.body
            return instance_id
        await asyncio.sleep(0.05)
    raise AssertionError("the instance did not finish")


async def test_metrics_after_a_run_have_the_documented_names(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await _run(srv.admin, document("hello"))
        text = (await srv.admin.get("/metrics")).body
        series = await srv.admin.get("/api/v1/metrics/series")
    assert isinstance(text, str)
    for name in (
        "# TYPE process_instances_active gauge",
        "# TYPE agent_response_time_seconds histogram",
        "# TYPE cadenza_task_queue_depth gauge",
        "# TYPE cadenza_lease_expiries_total counter",
        'task_executions_total{node_type="transform",status="completed"} 1.0',
        'cadenza_task_duration_seconds_count{node_type="transform"} 1.0',
        'http_requests_total{method="POST",route="/api/v1/processes/instances",status="201"} 1.0',
        'route="/api/v1/processes/instances/{instance_id}"',
        'http_request_duration_seconds_bucket{le="0.1",method="POST",route="/api/v1/auth/login"}',
    ):
        assert name in text, name
    assert series.status == 200
    assert series.body["interval_s"] == 5.0
    assert len(series.body["t"]) >= 1  # sampled at start-up
    assert set(series.body["series"]) >= {
        "instances_active",
        "queue_depth",
        "task_rate",
        "task_latency_p50",
        "task_latency_p95",
        "agent_response_p50",
    }


def _ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[int]:
    by_id = {s.context.span_id: s for s in spans}
    found: list[int] = []
    parent = span.parent
    while parent is not None:
        found.append(parent.span_id)
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return found


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_one_trace_from_http_request_to_the_model_call(
    sqlite_url: str, exporter: InMemorySpanExporter
) -> None:
    async with HeaderLoggingOpenAI() as fake:
        provider = ProviderSettings(name="fake", base_url=fake.base_url, default_model="fake-small")
        async with serve(
            sqlite_url, providers=[provider], default_provider="fake", trace_engine=True
        ) as srv:
            doc = document(
                "ask",
                nodes=[{"id": "ask", "type": "llm", "config": {"prompt": "hi {{ inputs.name }}"}}],
                outputs={"answer": "{{ nodes.ask.output.text }}"},
            )
            instance_id = await _run(srv.admin, doc, {"traceparent": TRACEPARENT})
    spans = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]
    server = _one(spans, "POST /api/v1/processes/instances")
    instance = _one(spans, "instance ask")
    task = _one(spans, "task llm")
    chat = _one(spans, "llm.chat")
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == PARENT_SPAN
    assert server.kind is trace.SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["cadenza.request_id"]
    # FastAPI's operation spans may sit between the request and the instance it started
    assert server.context.span_id in _ancestors(instance, spans)
    assert instance.attributes is not None
    assert instance.attributes["cadenza.instance_id"] == instance_id
    assert task.parent is not None
    assert task.parent.span_id == instance.context.span_id
    assert chat.parent is not None
    assert chat.parent.span_id == task.context.span_id
    # the model call went out with the trace: the LLM span is its parent
    flags = f"{chat.context.trace_flags:02x}"
    assert fake.traceparents == [f"00-{TRACE_ID}-{chat.context.span_id:016x}-{flags}"]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    with json_log_lines("DEBUG") as stream:
        yield stream


async def test_request_log_lines_carry_request_and_trace_ids(
    sqlite_url: str, json_logs: io.StringIO
) -> None:
    async with serve(sqlite_url) as srv:
        reply = await srv.admin.get(
            "/api/v1/node-types",
            headers={"traceparent": TRACEPARENT, "X-Request-Id": "req-42"},
        )
    assert reply.status == 200
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    ours = [line for line in lines if line.get("request_id") == "req-42"]
    assert ours, lines[-5:]
    line = ours[-1]
    assert line["trace_id"] == TRACE_ID
    assert line["logger"] == "cadenza.http"
    assert line["level"] == "debug"
    assert "GET /api/v1/node-types -> 200" in line["event"]
    assert {"timestamp", "span_id"} <= set(line)


async def test_api_metrics_take_the_metrics_token_besides_a_viewer_key(sqlite_url: str) -> None:
    token = "m" * 40
    async with serve(sqlite_url, metrics_token=token) as srv:
        scrape = await srv.anonymous.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scrape.status == 200
        assert "# TYPE process_instances_active gauge" in scrape.body
        assert (await srv.admin.get("/metrics")).status == 200
        wrong = {"Authorization": "Bearer " + "x" * 40}
        assert (await srv.anonymous.get("/metrics", headers=wrong)).status == 401
        assert (await srv.anonymous.get("/metrics")).status == 401
