"""The span of an instance started on an API-only process is ended there when another process
ends the instance: a worker completes it or fails it, a second API process cancels it.

Three runtimes on one database, tracing on: API process A (starts the instances, runs no
tasks), API process B (cancels one), a worker (runs the tasks). They share one "remote"
in-process bus (as processes share Redis or Kafka), or share nothing but the database (each
its own in-process bus: A's live feed then finds the other processes' commits on its poll).
Every span goes to an in-memory exporter on the process's tracer provider; only A opens
instance spans, so an exported instance span was ended by A.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.api.harness import Server, serve
from tests.trace_docs import DOCS

from cadenza.application.ports_bus import EventBus
from cadenza.bootstrap import Runtime, build
from cadenza.infrastructure.bus.memory import MemoryBus
from cadenza.infrastructure.observability.tracer_provider import install_tracing
from cadenza.infrastructure.observability.tracing import Tracing
from cadenza.settings import Settings

DEADLINE_S = 30.0


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    install_tracing().add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the provider lives on: keep nothing more


@asynccontextmanager
async def worker(database_url: str, bus: EventBus | None) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=database_url,
        trace_engine=True,
        engine_inline_pure=False,
        sweep_interval_s=0.05,
    )
    rt = await build(settings, run_worker=True, bus=bus)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a state, never a duration); fail with ``what`` at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def instance_span(exporter: InMemorySpanExporter, instance_id: str) -> ReadableSpan | None:
    for span in exporter.get_finished_spans():
        attrs = span.attributes or {}
        if span.name.startswith("instance") and attrs.get("cadenza.instance_id") == instance_id:
            return span
    return None


async def ended(exporter: InMemorySpanExporter, instance_id: str) -> ReadableSpan:
    await until(lambda: instance_span(exporter, instance_id) is not None, f"{instance_id}'s span")
    span = instance_span(exporter, instance_id)
    assert span is not None
    return span


async def start(api: Server, process_id: str, inputs: dict[str, Any]) -> str:
    r = await api.admin.post(
        "/api/v1/processes/instances", {"process_id": process_id, "inputs": inputs}
    )
    assert r.status == 201, r.body
    return str(r.body["id"])


@pytest.mark.parametrize("shared_bus", [True, False], ids=["remote-bus", "no-shared-bus"])
async def test_the_api_that_opened_an_instance_span_ends_it_when_another_process_ends_it(
    database_url: str, exporter: InMemorySpanExporter, shared_bus: bool
) -> None:
    def bus() -> MemoryBus | None:
        return shared if shared_bus else None

    shared = MemoryBus(remote=True)
    api = {"run_worker": False, "trace_engine": True, "engine_inline_pure": False}
    async with (
        serve(database_url, bus=bus(), **api) as a,
        serve(database_url, bus=bus(), **api) as b,
        worker(database_url, bus()) as w,
    ):
        tracing = a.runtime.tracing
        assert isinstance(tracing, Tracing)
        for document in DOCS:
            saved = await a.admin.post(
                "/api/v1/processes/definitions", {"document": document, "publish": True}
            )
            assert saved.status in (200, 201), saved.body
        done = await start(a, "shout", {"x": "hi"})
        broken = await start(a, "divide", {"zero": 0})
        napping = await start(a, "nap", {})

        completed = await ended(exporter, done)
        assert completed.name == "instance shout"
        assert completed.status.status_code is StatusCode.OK
        assert (completed.attributes or {})["cadenza.status"] == "completed"
        [task] = [
            s
            for s in exporter.get_finished_spans()
            if s.name == "task transform" and (s.attributes or {})["cadenza.instance_id"] == done
        ]
        assert task.parent is not None  # run by the worker, in the trace of A's span
        assert task.parent.span_id == completed.context.span_id

        failed = await ended(exporter, broken)
        assert failed.status.status_code is StatusCode.ERROR
        assert "division" in (failed.status.description or "").lower()
        assert (failed.attributes or {})["cadenza.status"] == "failed"
        assert tracing.open_count == 1  # the napping one

        cancel = await b.admin.post(f"/api/v1/processes/instances/{napping}/cancel")
        assert cancel.status == 200, cancel.body
        cancelled = await ended(exporter, napping)
        assert cancelled.status.status_code is StatusCode.UNSET
        assert (cancelled.attributes or {})["cadenza.status"] == "cancelled"
        assert tracing.open_count == 0
        assert w.tracing is not None
        assert w.tracing.open_count == 0  # it opened none
