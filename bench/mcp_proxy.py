"""What the MCP proxy adds to a tool call: ``echo`` in-process vs through ``cadenza mcp-proxy``.

    .venv/bin/python -m bench.mcp_proxy
    .venv/bin/python -m bench.mcp_proxy --calls 500 --concurrency 1,20

The in-repo MCP test server runs over streamable HTTP on 127.0.0.1. Path ``direct``: this
process's ``ResilientGateway`` holds the session (a worker without ``mcp_proxy_url``). Path
``proxy``: a ``cadenza mcp-proxy`` process holds it and this process calls it with
``ProxyToolGateway`` (a worker with ``mcp_proxy_url``). Each path runs a warm-up, then
``--calls`` calls with N in flight at once; one JSON line per (path, N): calls/s and the
p50/p99 latency in ms. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.mcp_proxy_harness import TOKEN, ProxyProcess, http_upstream

from cadenza.application.ports_ai import ToolGateway
from cadenza.infrastructure.mcp import HttpServer, McpGateway
from cadenza.infrastructure.mcp.proxy_client import ProxyToolGateway
from cadenza.infrastructure.mcp.resilient import ResilientGateway


async def _burst(gateway: ToolGateway, calls: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            started = time.perf_counter()
            await gateway.call_tool("up", "echo", {"text": str(i)}, idempotency_key=f"b-{i}")
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(i) for i in range(calls)))
    return latencies


async def _measure(path: str, gateway: ToolGateway, calls: int, levels: list[int]) -> None:
    await gateway.list_tools("up")
    await _burst(gateway, 50, 1)  # warm-up: connections, caches
    for concurrency in levels:
        started = time.perf_counter()
        latencies = sorted(await _burst(gateway, calls, concurrency))
        wall = time.perf_counter() - started
        line = {
            "path": path,
            "concurrency": concurrency,
            "calls": calls,
            "calls_per_s": round(calls / wall, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        }
        print(json.dumps(line), flush=True)


async def main(calls: int, levels: list[int]) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        http_upstream(Path(tmp) / "calls.jsonl", Path(tmp) / "gate") as url,
    ):
        direct = ResilientGateway(McpGateway([HttpServer("up", url)]))
        print("direct ...", file=sys.stderr)
        await _measure("direct", direct, calls, levels)
        await direct.aclose()
        proxy = ProxyProcess([{"name": "up", "url": url}])
        proxy.start()
        try:
            via = ProxyToolGateway(proxy.url, TOKEN)
            print("proxy ...", file=sys.stderr)
            await _measure("proxy", via, calls, levels)
            await via.aclose()
        finally:
            proxy.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", default="1,20")
    args = parser.parse_args()
    asyncio.run(main(args.calls, [int(n) for n in args.concurrency.split(",")]))
