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

from cadenza.bootstrap import build
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


async def run_w3(database_url: str, base_url: str, instances: int = 100) -> dict[str, float]:
    provider = ProviderSettings(
        name="local", kind="openai", base_url=base_url, default_model="fake-small"
    )
    rt = await build(
        Settings(
            database_url=database_url,
            worker_id="bench",
            providers=[provider],
            default_provider="local",
        )
    )
    try:
        stored = await rt.definitions.publish(w3_document())
        rt.definitions.plan_for(stored)
        await rt.engine.start()
        t0, c0 = time.perf_counter(), time.process_time()
        ids = await asyncio.gather(
            *(
                rt.engine.submit(StartInstance(stored.process_id, {"topic": "x"}))
                for _ in range(instances)
            )
        )
        finished = await asyncio.gather(*(rt.engine.wait_finished(str(i)) for i in ids))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        completed = sum(1 for inst in finished if inst.status.value == "completed")
        return {
            "wall_s": round(wall, 4),
            "cpu_s": round(cpu, 4),
            "completed": completed,
            "llm_calls": completed * (PARALLEL + 1),
            "tasks": completed * (PARALLEL + 2),
        }
    finally:
        await rt.close()
