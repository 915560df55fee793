"""Validation and parsing costs (issue 9), in-process, one JSON line per measurement.

    .venv/bin/python -m bench.validation

validate_chain   a chain of N ``transform`` nodes: ``parse_s`` the best of 3 validations;
                 ``loop_stall_on_loop_ms`` / ``loop_stall_in_thread_ms``: the longest a 10 ms
                 ticker on the event loop was late while 4 validations ran on the loop (as
                 before issue 9) or through ``Definitions.validate`` (a worker thread, one
                 at a time); ``loop_lateness_idle_ms`` the same with nothing running (the
                 machine's own noise).
redos            ``^(a+)+$`` against ``"a" * 100_000 + "!"`` through the input-schema check.
billion_laughs   a 9-level billion-laughs YAML through the definition reader (refused).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.bootstrap import build, tune_gc
from cadenza.domain.json import JSONObject
from cadenza.domain.limits import Limits
from cadenza.infrastructure.documents import DocumentError, parse_document
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.settings import Settings


def chain(n: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "transform", "config": {"output": "x"}} for i in range(n)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"schema": "cadenza/v1", "id": "chain", "nodes": nodes, "edges": edges}


async def _stall(work: Callable[[], Awaitable[object]]) -> float:
    """The longest a 10 ms ticker was late while ``work`` ran, in ms."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - t - 0.01)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    await work()
    done.set()
    await tick
    return worst * 1000


async def validate_chain(sizes: list[int]) -> None:
    runtime = await build(Settings(database_url="sqlite://"), migrate=False, run_worker=False)
    tune_gc()  # as ``cadenza serve`` does: a full collection would hold the GIL for ~200 ms
    try:
        d = runtime.definitions
        d.limits = Limits(max_nodes=max(sizes))
        for n in sizes:
            doc = chain(n)
            best = 1e9
            for _ in range(3):
                t = time.perf_counter()
                d.parse(doc)
                best = min(best, time.perf_counter() - t)

            async def on_loop(doc: dict[str, Any] = doc) -> None:
                for _ in range(4):
                    d.parse(doc)
                    await asyncio.sleep(0)

            async def in_thread(doc: dict[str, Any] = doc) -> None:
                await asyncio.gather(*(d.validate(doc) for _ in range(4)))

            async def idle() -> None:
                await asyncio.sleep(0.5)

            print(
                json.dumps(
                    {
                        "workload": "validate_chain",
                        "loop_lateness_idle_ms": round(await _stall(idle), 1),
                        "nodes": n,
                        "parse_s": round(best, 4),
                        "loop_stall_on_loop_ms": round(await _stall(on_loop), 1),
                        "loop_stall_in_thread_ms": round(await _stall(in_thread), 1),
                    }
                ),
                flush=True,
            )
    finally:
        await runtime.store.close()
        await runtime.egress.aclose()


def redos() -> None:
    schema: JSONObject = {
        "type": "object",
        "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}},
    }
    checks = JsonSchemaChecks()
    checks.schema(schema, {"x": "a"})  # compile once
    t = time.perf_counter()
    problems = checks.schema(schema, {"x": "a" * 100_000 + "!"})
    elapsed = time.perf_counter() - t
    print(json.dumps({"workload": "redos", "problems": len(problems), "check_s": elapsed}))


def billion_laughs() -> None:
    lines = ["vars:", f"  l0: &l0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "schema: cadenza/v1\nid: lol\n" + "\n".join(lines) + "\n"
    t = time.perf_counter()
    try:
        parse_document(text, "laughs.yaml")
        outcome = "accepted"
    except DocumentError as exc:
        outcome = str(exc)
    elapsed = time.perf_counter() - t
    print(json.dumps({"workload": "billion_laughs", "outcome": outcome, "parse_s": elapsed}))


def main() -> None:
    asyncio.run(validate_chain([1_000, 4_000]))
    redos()
    billion_laughs()


if __name__ == "__main__":
    main()
