"""Size the shared httpx2 pool: N concurrent chat calls through OpenAICompatibleProvider.

    .venv/bin/python -m bench.httpx2_pool
    .venv/bin/python -m bench.httpx2_pool --calls 800 --delay 0.05 --pools 100,400,800,0 --repeat 5

The fake OpenAI server (tests/fakes) runs in its own process on 127.0.0.1 and answers every
call after ``--delay`` seconds, like a provider with 50 ms latency. For each pool size
(0 = unlimited) and each keep-alive setting, one provider (one httpx2 client) runs a warm-up
burst and then ``--repeat`` bursts of ``--calls`` concurrent calls; one JSON line per setting
gives the medians over the bursts. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from multiprocessing.synchronize import Event as EventType
from typing import Any

import psutil
from tests.fakes.openai_server import FakeOpenAIServer

from cadenza.application.ports_ai import ChatMessage, ChatRequest
from cadenza.infrastructure.llm.openai_compatible import OpenAICompatibleProvider
from cadenza.infrastructure.llm.sdk import make_http_client


def _serve(ports: multiprocessing.Queue[int], stop: EventType, delay_s: float) -> None:
    async def main() -> None:
        async with FakeOpenAIServer(delay_s=delay_s) as server:
            ports.put(server.port)
            while not stop.is_set():
                await asyncio.sleep(0.05)
                server.requests.clear()  # the log is for tests; here it would only grow

    asyncio.run(main())


def _sockets_to(port: int) -> int:
    me = psutil.Process()
    return sum(1 for c in me.net_connections("tcp") if c.raddr and c.raddr[1] == port)


async def _burst(provider: OpenAICompatibleProvider, calls: int) -> dict[str, float]:
    latencies: list[float] = []

    async def one(i: int) -> None:
        started = time.perf_counter()
        request = ChatRequest("fake-small", (ChatMessage("user", f"call {i}"),), timeout_s=60.0)
        await provider.chat(request)
        latencies.append(time.perf_counter() - started)

    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    latencies.sort()
    return {
        "wall_s": wall,
        "calls_per_s": calls / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "cpu_ms_per_call": 1000 * cpu / calls,
        "errors": float(sum(isinstance(o, BaseException) for o in outcomes)),
    }


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _measure(
    port: int, server: psutil.Process, pool: int | None, keepalive: int | None, args: Any
) -> dict[str, Any]:
    calls, repeat = args.calls, args.repeat
    http = make_http_client(pool, keepalive=keepalive, timeout_s=60.0)
    provider = OpenAICompatibleProvider(
        "bench", base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", http_client=http
    )
    try:
        cold = await _burst(provider, calls)  # opens the connections
        server_cpu = _cpu_s(server)
        runs = [await _burst(provider, calls) for _ in range(repeat)]
        server_cpu = _cpu_s(server) - server_cpu
        kept = _sockets_to(port)
    finally:
        await http.aclose()
    row: dict[str, Any] = {
        "pool": pool or "unlimited",
        "keepalive": keepalive or "unlimited",
        "calls": calls,
        "cold_wall_s": round(cold["wall_s"], 3),
    }
    for key in runs[0]:
        row[key] = round(statistics.median(r[key] for r in runs), 3)
    row["server_cpu_ms_per_call"] = round(1000 * server_cpu / (calls * repeat), 3)
    row["errors"] = int(sum(r["errors"] for r in runs) + cold["errors"])
    row["sockets_kept"] = kept
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--pools", default="100,400,800,0", help="0 = unlimited")
    parser.add_argument("--keepalive", default="100,pool", help="numbers, or 'pool' = pool size")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(ports, stop, args.delay), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        server_process = psutil.Process(server.pid)
        for size in (int(p) for p in args.pools.split(",")):
            pool = size or None
            keeps = [pool if k == "pool" else int(k) for k in args.keepalive.split(",")]
            for keepalive in dict.fromkeys(keeps):  # distinct, in order
                if pool is not None and keepalive is not None and keepalive > pool:
                    continue
                print(f"pool={pool} keepalive={keepalive} ...", file=sys.stderr)
                row = asyncio.run(_measure(port, server_process, pool, keepalive, args))
                print(json.dumps(row), flush=True)
    finally:
        stop.set()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
