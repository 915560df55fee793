"""The instance span an API-only process opens is ended and exported by that process when a
worker *process* finishes the instance.

Real processes on one SQLite file: ``cadenza serve --role api`` (runs no tasks) and ``cadenza
worker``, both exporting their spans over OTLP/HTTP to a receiver in the test, on one Redis
bus or on none (each process its own in-process bus: the API's live feed then finds the
worker's commits on its poll). The API starts three instances: the worker completes one and
fails one; the third waits an hour and is cancelled through the API. Each instance span
arrives from the API process with its status, the worker's task spans are its children, and
the API's ``cadenza_trace_open_instance_spans`` returns to 0. Waits are conditions with
deadlines, never sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.e2e import config_harness as h
from tests.e2e.otlp_collector import OtlpCollector, ReceivedSpan
from tests.net import free_port
from tests.trace_docs import DOCS

WORKER_RUNNING = re.compile(r"worker \S+ running on ")
OPEN_SPANS = re.compile(r"^cadenza_trace_open_instance_spans (\S+)$", re.MULTILINE)


@pytest.fixture(params=["redis", "no-shared-bus"])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_bus_url"))
    return "memory://"


def instance_span(collector: OtlpCollector, instance_id: str) -> ReceivedSpan | None:
    for span in collector.spans:
        if span.name.startswith("instance ") and span.attributes.get("cadenza.instance_id") == (
            instance_id
        ):
            return span
    return None


async def test_a_worker_process_finishing_an_instance_ends_the_api_process_span(
    tmp_path: Path, bus_url: str
) -> None:
    env = h.env(tmp_path, f"sqlite:///{tmp_path}/cadenza.db", bus_url)
    env["CADENZA_ENGINE_INLINE_PURE"] = "false"  # the transforms are the worker's tasks
    env["OTEL_BSP_SCHEDULE_DELAY"] = "50"  # export batches every 50 ms, not 5 s
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    async with OtlpCollector() as collector, aiohttp.ClientSession() as http:
        env["CADENZA_OTLP_ENDPOINT"] = collector.endpoint
        api_env = {**env, "OTEL_SERVICE_NAME": "cadenza-api"}
        worker_env = {**env, "OTEL_SERVICE_NAME": "cadenza-worker"}
        with h.process(["serve", "--role", "api", "--port", str(port)], api_env, api_log) as api:
            await h.answers(http, f"{base}/health", api, api_log)
            with h.process(["worker"], worker_env, worker_log):
                await h.until(
                    "the worker runs",
                    lambda: WORKER_RUNNING.search(worker_log.read_text()),
                    worker_log,
                )
                if bus_url.startswith("redis"):  # the API's live feed follows the bus
                    await h.until(
                        "the API's feed follows the bus",
                        lambda: h.followers(bus_url, "feed:", 1),
                        api_log,
                    )
                async with h.api(http, base) as auth:
                    await _scenario(http, base, auth, collector, api_log)


async def _scenario(
    http: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    collector: OtlpCollector,
    api_log: Path,
) -> None:
    for document in DOCS:
        await h.publish(http, base, auth, document)

    async def start(process_id: str, inputs: dict[str, Any]) -> str:
        body = {"process_id": process_id, "inputs": inputs}
        status, got = await h.call(http, "POST", f"{base}/api/v1/processes/instances", auth, body)
        assert status == 201, got
        return str(got["id"])

    async def ended(instance_id: str) -> ReceivedSpan:
        found = await h.until(
            f"the span of {instance_id}", lambda: instance_span(collector, instance_id), api_log
        )
        assert isinstance(found, ReceivedSpan)
        assert found.service == "cadenza-api"  # opened and ended by the API process
        return found

    done = await start("shout", {"x": "hi"})
    broken = await start("divide", {"zero": 0})
    napping = await start("nap", {})

    completed = await ended(done)
    assert completed.name == "instance shout"
    assert completed.status == "OK"
    assert completed.attributes["cadenza.status"] == "completed"
    [task] = await h.until(
        "the worker's task span",
        lambda: [
            s
            for s in collector.spans
            if s.name == "task transform" and s.attributes.get("cadenza.instance_id") == done
        ],
        api_log,
    )
    assert task.service == "cadenza-worker"
    assert task.trace_id == completed.trace_id
    assert task.parent_span_id == completed.span_id

    failed = await ended(broken)
    assert failed.status == "ERROR"
    assert "division" in failed.description.lower()
    assert failed.attributes["cadenza.status"] == "failed"

    status, body = await h.call(
        http, "POST", f"{base}/api/v1/processes/instances/{napping}/cancel", auth
    )
    assert status == 200, body
    cancelled = await ended(napping)
    assert cancelled.status == "UNSET"
    assert cancelled.attributes["cadenza.status"] == "cancelled"

    async def open_spans() -> float:
        async with http.get(f"{base}/metrics", headers=auth) as r:
            assert r.status == 200, await r.text()
            found = OPEN_SPANS.search(await r.text())
        assert found is not None
        return float(found.group(1))

    assert await open_spans() == 0.0
