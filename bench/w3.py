"""W3 LLM pipeline (DESIGN §10): ``instances`` x (8 parallel ``llm`` calls -> join -> 1 summary)
against a local OpenAI-compatible server answering in 50 ms, run in its own process so its CPU
time is not the engine's. The model calls go through the real OpenAI SDK (httpx2 client)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.workloads import Finishes, Result, peak_rss_mb
from cadenza.bootstrap import Runtime, build
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSONObject
from cadenza.settings import ProviderSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = 8


def w3_document() -> JSONObject:
    calls: list[JSONObject] = [
        {
            "id": f"ask{i}",
            "type": "llm",
            "config": {"prompt": f"Part {i} of {{{{ inputs.topic }}}}"},
        }
        for i in range(PARALLEL)
    ]
    summary: JSONObject = {
        "id": "summary",
        "type": "llm",
        "config": {"prompt": "Summarize: {{ nodes.join.output }}"},
    }
    join: JSONObject = {
        "id": "join",
        "type": "transform",
        "config": {
            "output": " | ".join(f"{{{{ nodes.ask{i}.output.text }}}}" for i in range(PARALLEL))
        },
    }
    edges: list[JSONObject] = [{"from": f"ask{i}", "to": "join"} for i in range(PARALLEL)]
    edges.append({"from": "join", "to": "summary"})
    return {
        "schema": "cadenza/v1",
        "id": "bench-w3",
        "name": "W3: 8 parallel model calls, a join, a summary",
        "nodes": [*calls, join, summary],
        "edges": edges,  # type: ignore[dict-item]
        "outputs": {"summary": "{{ nodes.summary.output.text }}"},
    }


@contextlib.contextmanager
def fake_model_server(delay_s: float = 0.05) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.serve_openai", "--delay", str(delay_s)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake model server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


async def run_w3(database_url: str, instances: int = 100) -> Result:
    """Start the fake model server in its own process, then measure like W1/W2."""
    with fake_model_server() as base_url:
        provider = ProviderSettings(
            name="local", kind="openai", base_url=base_url, default_model="fake-small"
        )
        settings = Settings(
            database_url=database_url,
            worker_id="bench",
            providers=[provider],
            default_provider="local",
        )
        rt = await build(settings)
        try:
            stored = await rt.definitions.publish(w3_document())
            rt.definitions.plan_for(stored)
            finishes = Finishes()
            rt.engine.subscribe(finishes)
            await rt.engine.start()
            rss = peak_rss_mb()
            t0, c0 = time.perf_counter(), time.process_time()
            ids = await asyncio.gather(
                *(_one(rt, finishes, stored.process_id) for _ in range(instances))
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            completed = sum(1 for i in ids if finishes.status.get(i) == "InstanceCompleted")
            return Result(
                workload="w3",
                params={"instances": instances},
                wall_s=wall,
                cpu_s=cpu,
                rss_at_start_mb=rss,
                tasks=completed * (PARALLEL + 2),
                task_rows=completed * (PARALLEL + 4),
                instances=instances,
                completed=completed,
            )
        finally:
            await rt.close()


async def _one(rt: Runtime, finishes: Finishes, process_id: str) -> str:
    iid = await rt.engine.submit(StartInstance(process_id, {"topic": "x"}))
    assert isinstance(iid, str)
    await finishes.wait(iid)
    return iid
