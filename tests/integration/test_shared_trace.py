"""An instance's trace context is stored with it: the span of the API process that started it
and the task spans of the worker that runs its tasks join one trace (two runtimes on one
database, an in-memory span exporter on the process's tracer provider)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cadenza.application.ports_bus import EventBus
from cadenza.bootstrap import Runtime, build
from cadenza.domain.commands import CancelInstance, StartInstance
from cadenza.infrastructure.bus.memory import MemoryBus
from cadenza.infrastructure.observability.tracer_provider import install_tracing
from cadenza.infrastructure.observability.tracing import Tracing
from cadenza.settings import Settings

DOC = {
    "schema": "cadenza/v1",
    "id": "traced",
    "nodes": [{"id": "shout", "type": "transform", "config": {"output": "{{ inputs.x }}!"}}],
    "outputs": {"said": "{{ nodes.shout.output }}"},
}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    install_tracing().add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the provider lives on: keep nothing more


@asynccontextmanager
async def runtime(
    database_url: str, *, run_worker: bool, bus: EventBus | None = None
) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=database_url,
        trace_engine=True,
        engine_inline_pure=False,  # the transform is a task for a worker, not computed inline
        sweep_interval_s=0.05,
    )
    rt = await build(settings, run_worker=run_worker, bus=bus)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()


async def test_the_workers_task_span_joins_the_trace_of_the_api_that_started_it(
    database_url: str, exporter: InMemorySpanExporter
) -> None:
    async with (
        runtime(database_url, run_worker=False) as api,
        runtime(database_url, run_worker=True) as worker,
    ):
        stored = await api.definitions.publish(DOC)
        tracer = install_tracing().get_tracer("test")
        with tracer.start_as_current_span("POST /api/v1/processes/instances") as request:
            iid = await api.engine.submit(StartInstance(stored.process_id, {"x": "hi"}))
        assert isinstance(iid, str)
        done = await asyncio.wait_for(worker.engine.wait_finished(iid), 20)
        assert done.outputs == {"said": "hi!"}
        row = await worker.store.get_instance(iid)
    assert row is not None
    assert row.trace_context is not None
    trace_id = request.get_span_context().trace_id
    _, stored_trace, instance_span, _ = row.trace_context.split("-")
    assert int(stored_trace, 16) == trace_id
    [task] = [s for s in exporter.get_finished_spans() if s.name == "task transform"]
    assert task.attributes is not None
    assert task.attributes["cadenza.instance_id"] == iid
    assert task.context.trace_id == trace_id
    assert task.parent is not None
    assert task.parent.span_id == int(instance_span, 16)


NAP = {
    "schema": "cadenza/v1",
    "id": "nap",
    "nodes": [{"id": "nap", "type": "wait", "config": {"duration": "1h"}}],
}


async def test_a_worker_ends_its_instance_span_when_the_bus_says_another_process_ended_it(
    database_url: str, exporter: InMemorySpanExporter
) -> None:
    """A worker has no live feed: the bus tells it (as it would of a subprocess child it
    started and another worker finished)."""
    bus = MemoryBus(remote=True)
    async with (
        runtime(database_url, run_worker=True, bus=bus) as first,
        runtime(database_url, run_worker=True, bus=bus) as second,
    ):
        tracing = first.tracing
        assert isinstance(tracing, Tracing)
        group = f"sweeper:{first.engine.settings.holder}"
        async with asyncio.timeout(20):
            while group not in bus.groups:  # the worker follows the bus
                await asyncio.sleep(0.01)
        await first.definitions.publish(NAP)
        iid = await first.engine.submit(StartInstance("nap", {}))
        assert isinstance(iid, str)
        assert tracing.open_count == 1
        await second.engine.submit(CancelInstance(iid, "elsewhere"))
        async with asyncio.timeout(20):
            while tracing.open_count:
                await asyncio.sleep(0.01)
    [span] = [s for s in exporter.get_finished_spans() if s.name == "instance nap"]
    assert span.attributes is not None
    assert span.attributes["cadenza.instance_id"] == iid
    assert span.attributes["cadenza.status"] == "cancelled"
