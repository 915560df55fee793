"""The engine's tracer adapter (instance and task spans, log context) and the outbound
``traceparent`` helpers, against an in-memory span exporter."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Iterator

import httpx2
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.logs import json_log_lines

from cadenza.application.ports_bus import BusMessage
from cadenza.domain import events as ev
from cadenza.infrastructure.observability.tracer_provider import install_tracing, traces_url
from cadenza.infrastructure.observability.tracing import (
    ELSEWHERE,
    MAX_ENDED,
    Tracing,
    inject_trace,
    inject_traceparent,
    server_span,
    trace_meta,
)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def started(instance_id: str, parent: str | None = None) -> tuple[int, ev.Event]:
    return (
        1,
        ev.InstanceStarted(
            instance_id=instance_id,
            event_id=f"e-{instance_id}",
            occurred_at=1.0,
            process_id="orders",
            version=3,
            definition_hash="h",
            inputs={},
            parent_instance_id=parent,
        ),
    )


def completed(instance_id: str) -> tuple[int, ev.Event]:
    return (
        9,
        ev.InstanceCompleted(instance_id=instance_id, event_id="x", occurred_at=2.0, outputs={}),
    )


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_instance_joins_its_starters_trace_and_tasks_join_the_instance(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider=provider)
    with provider.get_tracer("t").start_as_current_span("POST /instances") as request:
        origin = contextvars.copy_context()
    traceparent = tracing.open_instance(origin)
    tracing.instance_started("i1", traceparent)
    tracing.on_events([started("i1")])
    with tracing.task("i1", "t1", {"node_type": "llm", "attempt": 1}):
        pass
    tracing.on_events([completed("i1")])
    instance, task = named(exporter, "instance orders"), named(exporter, "task llm")
    assert instance.parent is not None
    assert instance.parent.span_id == request.get_span_context().span_id
    assert instance.attributes is not None
    assert instance.attributes["cadenza.status"] == "completed"
    assert instance.attributes["cadenza.version"] == 3
    assert task.parent is not None
    assert task.parent.span_id == instance.context.span_id
    assert task.attributes is not None
    assert task.attributes["cadenza.task_id"] == "t1"
    assert task.attributes["cadenza.attempt"] == 1


def test_an_idempotent_start_of_a_finished_instance_opens_no_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(provider=provider)
    tracing.instance_started("old", tracing.open_instance(contextvars.copy_context()))
    tracing.on_events([completed("other")])  # the batch committed no InstanceStarted for it
    with tracing.task("old", "t", {}):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "task"
    assert span.parent is None  # a task of an instance unknown here starts a trace


def test_children_join_their_parent_instance_and_the_oldest_open_span_is_ended_first(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing = Tracing(max_open=2, provider=provider)
    tracing.on_events([started("parent"), started("child", parent="parent")])
    tracing.on_events([started("third")])
    parent = list(exporter.get_finished_spans())
    assert len(parent) == 1
    assert parent[0].attributes is not None
    assert parent[0].attributes["cadenza.span_truncated"] is True
    tracing.on_events([completed("child")])
    child = next(s for s in exporter.get_finished_spans() if s is not parent[0])
    assert child.parent is not None
    assert child.parent.span_id == parent[0].context.span_id


def test_a_task_of_an_instance_started_elsewhere_joins_the_stored_trace_context(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    api, worker = Tracing(provider=provider), Tracing(provider=provider)
    with provider.get_tracer("t").start_as_current_span("POST /instances") as request:
        traceparent = api.open_instance(contextvars.copy_context())
    assert traceparent is not None
    api.instance_started("i1", traceparent)
    api.on_events([started("i1")])
    with worker.task("i1", "t1", {"node_type": "http"}, traceparent):
        pass
    api.on_events([completed("i1")])
    instance, task = named(exporter, "instance orders"), named(exporter, "task http")
    trace_id = request.get_span_context().trace_id
    assert instance.context.trace_id == task.context.trace_id == trace_id
    assert task.parent is not None
    assert task.parent.span_id == instance.context.span_id
    assert traceparent.startswith(f"00-{trace_id:032x}-{instance.context.span_id:016x}-")


def ends(instance_id: str) -> list[ev.Event]:
    """Its completion, failure and cancellation."""
    iid, eid = instance_id, "z"
    return [
        ev.InstanceCompleted(instance_id=iid, event_id=eid, occurred_at=3.0, outputs={}),
        ev.InstanceFailed(instance_id=iid, event_id=eid, occurred_at=3.0, error="boom at step"),
        ev.InstanceCancelled(instance_id=iid, event_id=eid, occurred_at=3.0, reason="by hand"),
    ]


@pytest.mark.parametrize(
    ("which", "status", "code", "description"),
    [
        (0, "completed", StatusCode.OK, None),
        (1, "failed", StatusCode.ERROR, "boom at step"),
        (2, "cancelled", StatusCode.UNSET, None),
    ],
)
def test_an_end_committed_by_another_process_ends_the_span_opened_here(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    which: int,
    status: str,
    code: StatusCode,
    description: str | None,
) -> None:
    api = Tracing(provider=provider)
    api.instance_started("i1", api.open_instance(contextvars.copy_context()))
    api.on_events([started("i1")])
    assert api.open_count == 1
    # the feed of every process's commits: other events, other instances, then the end
    api.ended_elsewhere([started("i1")[1], ends("unknown")[0], ends("i1")[which]])
    assert api.open_count == 0
    [span] = exporter.get_finished_spans()
    assert span.name == "instance orders"
    assert span.attributes is not None
    assert span.attributes["cadenza.status"] == status
    assert span.status.status_code is code
    assert span.status.description == description
    api.ended_elsewhere(ends("i1"))  # the feed repeats it, or this process's own end
    api.on_events([(9, e) for e in ends("i1")])
    assert len(exporter.get_finished_spans()) == 1


def test_an_end_heard_before_the_start_was_seen_here_ends_the_span_at_once(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    api = Tracing(provider=provider)
    traceparent = api.open_instance(contextvars.copy_context())
    api.ended_elsewhere([ends("i1")[0]])  # a worker was faster than this process's listener
    assert exporter.get_finished_spans() == ()
    api.instance_started("i1", traceparent)
    api.on_events([started("i1")])
    assert api.open_count == 0
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["cadenza.status"] == "completed"


def test_ends_of_instances_never_opened_here_are_remembered_within_a_bound(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    api = Tracing(provider=provider)
    api.ended_elsewhere(ends(f"i{n}")[0] for n in range(MAX_ENDED + 5))
    api.on_events([started("i0")])  # forgotten: the oldest went first
    api.on_events([started(f"i{MAX_ENDED + 4}")])  # remembered: ended at once
    assert api.open_count == 1
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["cadenza.instance_id"] == f"i{MAX_ENDED + 4}"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("InstanceCompleted", "completed", StatusCode.OK),
        ("InstanceFailed", "failed", StatusCode.ERROR),
        ("InstanceCancelled", "cancelled", StatusCode.UNSET),
    ],
)
def test_an_end_on_the_bus_ends_the_span_a_worker_opened(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    kind: str,
    status: str,
    code: StatusCode,
) -> None:
    worker = Tracing(provider=provider)
    worker.on_events([started("child")])  # a subprocess child this worker started
    worker.ended_on_bus(BusMessage("TaskCompleted", "child", "default", 4, 1.0))
    worker.ended_on_bus(BusMessage(kind, "other", "default", 2, 1.0))
    assert worker.open_count == 1
    worker.ended_on_bus(BusMessage(kind, "child", "default", 5, 1.0))
    assert worker.open_count == 0
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["cadenza.status"] == status
    assert span.status.status_code is code
    if code is StatusCode.ERROR:  # the error stays in the instance: not on the bus
        assert span.status.description == ELSEWHERE


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    with json_log_lines("INFO") as stream:
        yield stream


def test_log_lines_in_a_task_carry_instance_task_and_trace_ids(
    provider: TracerProvider, json_lines: io.StringIO
) -> None:
    tracing = Tracing(provider=provider)
    with tracing.task("i9", "t9", {"node_type": "http"}):
        logging.getLogger("cadenza.test").warning("calling %s", "out")
        structlog.get_logger("cadenza.test2").info("structured", extra_field=1)
    logging.getLogger("cadenza.test").warning("after")
    first, second, after = (json.loads(line) for line in json_lines.getvalue().splitlines())
    assert first["event"] == "calling out"
    assert first["level"] == "warning"
    assert first["logger"] == "cadenza.test"
    assert first["instance_id"] == "i9"
    assert first["task_id"] == "t9"
    assert len(first["trace_id"]) == 32
    assert len(first["span_id"]) == 16
    assert "timestamp" in first
    assert second["event"] == "structured"
    assert second["extra_field"] == 1
    assert second["instance_id"] == "i9"
    assert second["logger"] == "cadenza.test2"
    assert "instance_id" not in after
    assert "trace_id" not in after


async def test_outbound_requests_carry_the_current_trace(provider: TracerProvider) -> None:
    carrier: dict[str, str] = {}
    inject_trace(carrier)
    assert carrier == {}  # no span, no header
    with provider.get_tracer("t").start_as_current_span("llm.chat") as span:
        ctx = span.get_span_context()
        expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
        await inject_traceparent(request)
        assert request.headers["traceparent"] == expected
        assert trace_meta() == {"traceparent": expected}
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_proxied_call_continues_the_trace_in_its_meta() -> None:
    install_tracing()  # the process-wide provider, as the MCP proxy installs it
    trace_id, parent = "ab" * 16, "cd" * 8
    meta: dict[str, object] = {"traceparent": f"00-{trace_id}-{parent}-01", "cadenza/timeout_s": 3}
    with server_span("mcp-proxy.call_tool", meta, {"cadenza.tool": "echo"}):
        ctx = trace.get_current_span().get_span_context()
        forwarded = trace_meta()["traceparent"]
    assert f"{ctx.trace_id:032x}" == trace_id
    assert forwarded == f"00-{trace_id}-{ctx.span_id:016x}-01"
    assert f"{ctx.span_id:016x}" != parent


def test_otlp_endpoint_gets_the_traces_path_unless_it_has_one() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"
