"""Per-render cost of the template budget, and the event loop's lag under a hostile template.

    .venv/bin/python -m bench.templates [--n 2000]

Prints one JSON object. Medians in microseconds over ``--n`` renders of each template:

    jinja_us    plain Jinja (ImmutableSandboxedEnvironment, no budget), same template: baseline
    budget_us   JinjaTemplates' render job called directly (budget and guards, no thread hop)
    render_us   ``await JinjaTemplates.render`` as callers do (inline or thread, as chosen)
    path        "inline" or "thread": where ``render`` ran it

``hostile`` starts the probe's nested loop under the default limits and measures, meanwhile,
how late a 1 ms ``asyncio.sleep`` wakes up (the event loop's lag): its largest value and the
render's wall time until it was refused.

``alternatives`` gives the fixed costs of the two designs considered, in µs (medians): a bare
thread hop (``run_in_executor`` of a no-op, awaited through ``asyncio.shield`` as ``render``
does) and a blocking JSON round trip to a persistent child process, for a tiny context and for
one of 10,000 items (~330 KB): a subprocess would serialize the context on every render.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from jinja2 import ChainableUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cadenza.domain.json import JSON
from cadenza.infrastructure import template_budget as tb
from cadenza.infrastructure.templating import JinjaTemplates, TemplateLimits

CONTEXT: dict[str, object] = {
    "inputs": {"x": 42, "name": "Ada", "items": [{"name": f"item{i}", "n": i} for i in range(10)]},
    "nodes": {"a": {"output": {"text": "hello", "status": 200}}},
}
CASES: dict[str, str] = {
    "lookup": "{{ inputs.x }}",
    "text": "Hello {{ inputs.name }}, status {{ nodes.a.output.status }}",
    "condition": "{{ nodes.a.output.status == 200 and inputs.x is defined }}",
    "tojson": "{{ inputs | tojson }}",
    "filter": "{{ inputs['items'] | map(attribute='name') | join(', ') }}",
    "loop": "{% for item in inputs['items'] %}{{ item.name }}={{ item.n * 2 }};{% endfor %}",
}
PROBE = "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}"


def _median_us(run: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1e6, 2)


async def _median_async_us(templates: JinjaTemplates, text: str, n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await templates.render(text, CONTEXT)
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1e6, 2)


async def _case(
    templates: JinjaTemplates, env: ImmutableSandboxedEnvironment, text: str, n: int
) -> dict[str, object]:
    plain = env.from_string(text)
    compiled = templates._prepare(text)
    inline = all(c.inline for c in compiled.values())
    job = functools.partial(templates._render, text, dict(CONTEXT), compiled)

    def budgeted() -> JSON:
        return templates._within(tb.Budget(200, 1_000_000), job)

    await templates.render(text, CONTEXT)  # warm the cache and the pool
    return {
        "template": text,
        "path": "inline" if inline else "thread",
        "jinja_us": _median_us(lambda: plain.render(CONTEXT), n),
        "budget_us": _median_us(budgeted, n),
        "render_us": await _median_async_us(templates, text, n),
    }


async def _hostile(templates: JinjaTemplates) -> dict[str, object]:
    lags: list[float] = []
    render = asyncio.create_task(templates.render(PROBE, {}))
    start = time.perf_counter()
    while not render.done():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - before - 0.001)
    wall = time.perf_counter() - start
    try:
        render.result()
        error = ""
    except Exception as exc:
        error = str(exc)
    return {
        "template": PROBE,
        "error": error,
        "render_ms": round(wall * 1000, 1),
        "loop_lag_max_ms": round(max(lags) * 1000, 2),
        "loop_lag_median_ms": round(statistics.median(lags) * 1000, 3),
        "loop_turns": len(lags),
    }


_CHILD = "import sys, json\nfor line in sys.stdin:\n    print(len(json.loads(line)), flush=True)\n"


def _round_trip_us(context: object, n: int) -> float:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None
    assert child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    def once() -> None:
        stdin.write(json.dumps(context) + "\n")
        stdin.flush()
        stdout.readline()

    try:
        return _median_us(once, n)
    finally:
        stdin.close()
        child.wait()


async def _alternatives(n: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    samples = []
    with ThreadPoolExecutor(1) as pool:
        for _ in range(n):
            start = time.perf_counter()
            await asyncio.shield(loop.run_in_executor(pool, int))
            samples.append(time.perf_counter() - start)
    big = {"inputs": {"items": [{"name": f"item{i}", "n": i} for i in range(10_000)]}}
    return {
        "thread_hop_us": round(statistics.median(samples) * 1e6, 2),
        "subprocess_tiny_context_us": _round_trip_us(CONTEXT, n),
        "subprocess_10000_items_us": _round_trip_us(big, max(n // 20, 10)),
    }


async def main(n: int) -> None:
    templates = JinjaTemplates(TemplateLimits())
    env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined)
    cases = {name: await _case(templates, env, text, n) for name, text in CASES.items()}
    out = {"n": n, "limits": TemplateLimits().__dict__, "cases": cases}
    out["hostile"] = await _hostile(templates)
    out["alternatives"] = await _alternatives(n)
    templates.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
