"""OpenTelemetry tracing: the engine's ``Tracer`` adapter, and W3C ``traceparent``
propagation for outbound calls (the process's tracer provider and its exporter are set up by
``tracer_provider``).

Spans: ``{METHOD} {route}`` (HTTP server, in ``interfaces/api/observe.py``) -> ``instance
{process}`` -> ``task {node_type}`` -> ``llm.chat`` / ``mcp.call_tool`` -> the outbound HTTP
request, which carries ``traceparent`` (httpx2 request hook for the SDK clients and MCP over
HTTP, headers for the egress client, ``_meta`` for MCP over stdio).

Across processes: the span of an instance is opened before its start commits, and its W3C
``traceparent`` is stored on the instance row (``instances.trace_context``) by that commit. A
task run by another process (or after a restart) starts its span as a child of that stored
context, so it joins the starter's trace; the instance span itself is ended (and exported) by
the process that opened it, when it sees the instance end: in its own commits (``on_events``)
or, on an API process, in the live feed of every process's commits (``ended_elsewhere``,
fed by the event hub), so an instance a worker finishes ends the span its API process opened;
on a worker (no live feed), in the messages of a bus that crosses processes (``ended_on_bus``).
"""

from __future__ import annotations

import contextvars
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from cadenza.application.ports_bus import BusMessage
from cadenza.application.ports_obs import SpanValue
from cadenza.domain import events as ev

if TYPE_CHECKING:
    import httpx2

MAX_OPEN_INSTANCES = 10_000  # instance spans kept open per process; the oldest is ended first
MAX_OPENING = 10_000  # spans opened for starts not yet committed; the oldest is dropped
MAX_ENDED = 1_000  # ends heard from the feed for spans not open (yet): the oldest forgotten
_W3C = TraceContextTextMapPropagator()
_FINISHED: dict[type[ev.Event], str] = {
    ev.InstanceCompleted: "completed",
    ev.InstanceFailed: "failed",
    ev.InstanceCancelled: "cancelled",
}
_FINISHED_NAMES = {kind.type_name: status for kind, status in _FINISHED.items()}
ELSEWHERE = "failed in another process (see the instance)"  # a bus message has no error


class Tracing:
    """The engine's ``Tracer`` over OpenTelemetry; also an engine listener (``on_events``)
    that opens instance spans on ``InstanceStarted`` and ends them when the instance ends."""

    def __init__(
        self, max_open: int = MAX_OPEN_INSTANCES, provider: trace.TracerProvider | None = None
    ) -> None:
        self._tracer = trace.get_tracer("cadenza.engine", tracer_provider=provider)
        self._max_open = max_open
        self._open: dict[str, Span] = {}
        self._fresh: dict[str, Span] = {}  # opened by instance_started, confirmed by on_events
        self._opening: dict[str, Span] = {}  # traceparent -> span of a start not yet committed
        # instance id -> its end (status, error), heard before this process saw it start
        self._ended: OrderedDict[str, tuple[str, str]] = OrderedDict()  # O(1) oldest-out

    @property
    def open_count(self) -> int:
        """Instance spans open in this process (started here, end not seen yet)."""
        return len(self._open)

    def open_instance(self, origin: contextvars.Context) -> str | None:
        parent = origin.run(otel_context.get_current)
        span = self._tracer.start_span("instance", context=parent)
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span))
        traceparent = carrier.get("traceparent")
        if traceparent is None:  # not a valid span (a no-op provider)
            return None
        self._opening[traceparent] = span
        while len(self._opening) > MAX_OPENING:  # starts that failed: never ended or exported
            del self._opening[next(iter(self._opening))]
        return traceparent

    def instance_started(self, instance_id: str, trace_context: str | None) -> None:
        span = self._opening.pop(trace_context or "", None)
        if span is None or instance_id in self._open:  # an idempotent start of a running one
            return
        span.set_attribute("cadenza.instance_id", instance_id)
        self._fresh[instance_id] = span

    def on_events(self, events: list[tuple[int, ev.Event]]) -> None:
        for _, e in events:
            if isinstance(e, ev.InstanceStarted):
                self._opened(e)
            else:
                status = _FINISHED.get(type(e))
                if status is not None:
                    self._finish(e.instance_id, status, getattr(e, "error", ""))
        # a start that committed no InstanceStarted returned an existing (finished) instance:
        # its span was never ended, so it is dropped without being exported
        self._fresh.clear()

    def ended_elsewhere(self, events: Iterable[ev.Event]) -> None:
        """Events committed by any process (an API process's live feed, which also repeats
        its own): an instance that ends ends its span here if this process opened one. The
        end of an instance not open is kept a while (``MAX_ENDED``): the feed may bring it
        before this process's own listener saw the start commit (a fast worker)."""
        for e in events:
            status = _FINISHED.get(type(e))
            if status is not None:
                self._ended_here(e.instance_id, status, getattr(e, "error", ""))

    def ended_on_bus(self, message: BusMessage) -> None:
        """A message of the event bus (a worker's, which has no live feed): the same as
        ``ended_elsewhere``, without the error text (payloads do not cross the bus)."""
        status = _FINISHED_NAMES.get(message.type)
        if status is not None:
            self._ended_here(message.instance_id, status, ELSEWHERE)

    def _ended_here(self, instance_id: str, status: str, error: str) -> None:
        if not self._finish(instance_id, status, error):
            self._ended[instance_id] = (status, error)
            if len(self._ended) > MAX_ENDED:
                self._ended.popitem(last=False)

    def _opened(self, e: ev.InstanceStarted) -> None:
        span = self._fresh.pop(e.instance_id, None)
        if span is None:  # a child instance, or a start that came without a submitter
            parent = self._open.get(e.parent_instance_id or "")
            ctx = trace.set_span_in_context(parent) if parent is not None else None
            span = self._tracer.start_span(
                "instance",
                context=ctx or otel_context.Context(),
                attributes={"cadenza.instance_id": e.instance_id},
            )
        span.update_name(f"instance {e.process_id}")
        span.set_attributes(
            {
                "cadenza.process_id": e.process_id,
                "cadenza.version": e.version,
                "cadenza.workspace_id": e.workspace_id,
            }
        )
        self._open[e.instance_id] = span
        end = self._ended.pop(e.instance_id, None)
        if end is not None:  # heard from the feed or the bus already
            self._finish(e.instance_id, *end)
            return
        while len(self._open) > self._max_open:
            oldest = next(iter(self._open))
            evicted = self._open.pop(oldest)
            evicted.set_attribute("cadenza.span_truncated", True)
            evicted.end()

    def _finish(self, instance_id: str, status: str, error: str) -> bool:
        """End the instance's span with ``status`` (completed, failed, cancelled); False if
        none is open here."""
        span = self._open.pop(instance_id, None)
        if span is None:
            return False
        span.set_attribute("cadenza.status", status)
        if status == "failed":
            span.set_status(Status(StatusCode.ERROR, error))
        elif status == "completed":
            span.set_status(Status(StatusCode.OK))
        span.end()
        return True

    def task(
        self,
        instance_id: str,
        task_id: str,
        attributes: Mapping[str, SpanValue],
        trace_context: str | None = None,
    ) -> AbstractContextManager[None]:
        parent = self._open.get(instance_id)
        if parent is not None:
            ctx = trace.set_span_in_context(parent)
        elif trace_context:  # the instance was started by another process (or before a restart)
            ctx = _W3C.extract({"traceparent": trace_context})
        else:
            ctx = otel_context.Context()
        attrs: dict[str, SpanValue] = {
            "cadenza.instance_id": instance_id,
            "cadenza.task_id": task_id,
        }
        attrs.update((f"cadenza.{k}", v) for k, v in attributes.items())
        name = f"task {attributes.get('node_type', '')}".rstrip()
        span = self._tracer.start_span(name, context=ctx, attributes=attrs)
        return _TaskScope(span, {"instance_id": instance_id, "task_id": task_id})


class LogContextTracer:
    """No spans, only the instance and task ids bound for log lines (the engine's default
    when traces are not exported)."""

    def open_instance(self, origin: contextvars.Context) -> str | None:
        return None

    def instance_started(self, instance_id: str, trace_context: str | None) -> None:
        return None

    def task(
        self,
        instance_id: str,
        task_id: str,
        attributes: Mapping[str, SpanValue],
        trace_context: str | None = None,
    ) -> AbstractContextManager[None]:
        return _LogScope({"instance_id": instance_id, "task_id": task_id})


class _LogScope:
    def __init__(self, log_context: dict[str, str]) -> None:
        self._log_context = log_context
        self._tokens: Mapping[str, contextvars.Token[object]] = {}

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(**self._log_context)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)


class _TaskScope:
    """The task's span made current and its ids bound for logs (a class, not generator-based
    context managers: this runs once per task, ~10 us cheaper)."""

    def __init__(self, span: Span, log_context: dict[str, str]) -> None:
        self._span = span
        self._log_context = log_context
        self._token: contextvars.Token[otel_context.Context] | None = None
        self._log_tokens: Mapping[str, contextvars.Token[object]] = {}

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._log_tokens = structlog.contextvars.bind_contextvars(**self._log_context)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        structlog.contextvars.reset_contextvars(**self._log_tokens)
        if self._token is not None:
            otel_context.detach(self._token)
        if exc is not None:
            if isinstance(exc, Exception):
                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            else:  # cancelled: the lease moved on, or the worker is stopping
                self._span.set_attribute("cadenza.cancelled", True)
        self._span.end()


# ---- outbound calls ----------------------------------------------------------------------------
@functools.cache
def _client_tracer() -> trace.Tracer:
    return trace.get_tracer("cadenza.client")


@contextmanager
def client_span(name: str, attributes: Mapping[str, SpanValue]) -> Iterator[None]:
    """A client span around a provider or tool call (its HTTP requests become children)."""
    with _client_tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
        yield


@contextmanager
def server_span(
    name: str, carrier: Mapping[str, object], attributes: Mapping[str, SpanValue]
) -> Iterator[None]:
    """A server span continuing the caller's trace (``traceparent`` in ``carrier``: the MCP
    ``_meta`` of a proxied call), so the calls it makes join that trace."""
    parent = _W3C.extract({k: v for k, v in carrier.items() if isinstance(v, str)})
    with _client_tracer().start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=attributes
    ):
        yield


def inject_trace(carrier: MutableMapping[str, str]) -> None:
    """Add ``traceparent`` (and ``tracestate``) of the current span, if there is one."""
    _W3C.inject(carrier)


def trace_meta() -> dict[str, str]:
    """The current trace context as MCP ``_meta`` entries (for servers over stdio)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


async def inject_traceparent(request: httpx2.Request) -> None:
    """httpx2 request hook: every request carries the caller's trace context."""
    _W3C.inject(request.headers)


def trace_hooks() -> dict[str, list[Callable[[httpx2.Request], Awaitable[None]]]]:
    """``event_hooks`` for an httpx2 client."""
    return {"request": [inject_traceparent]}
