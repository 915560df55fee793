"""Event bus delivery latency: publish here -> delivery to a subscriber in another process.

    .venv/bin/python -m bench.bus_latency --bus redis --messages 2000
    .venv/bin/python -m bench.bus_latency --bus kafka --messages 2000 --rate 500

Starts its own throwaway server (``redis-server`` through tests.redis_server, or librdkafka's
mock cluster through tests.kafka_mock), spawns the subscriber process (this module with
``--subscriber``), publishes probes until the subscriber has joined, then publishes
``--messages`` messages one per ``publish`` call, paced at ``--rate`` per second. Each
message carries the time it was handed to ``publish`` (``BusMessage.time``); the subscriber
records ``time.time()`` on delivery, and prints the latencies. One JSON object on stdout:

    p50_ms, p99_ms, max_ms   latency publish -> delivery (nearest rank), milliseconds
    messages, rate_per_s     what was sent, and at what pace
    bus                      the bus URL (no credentials)

The publisher side is one function of type ``PublishSide``: ``publish_direct`` (``--through
bus``) hands messages to the bus itself; ``publish_committed`` (``--through relay``) runs an
engine on a SQLite file with the bus, starts instances of a two-node process paced at
``--rate`` per second, and the outbox relay publishes their committed events. Each event's
``time`` is its commit's timestamp, so the latency is commit -> subscriber in another process,
the path a worker's event takes to an API process's live feed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from bench.run import percentile
from cadenza.application.ports_bus import BusMessage, EventBus
from cadenza.bootstrap.bus import open_bus
from cadenza.domain.json import JSONObject
from cadenza.settings import Settings

PROBE = "Probe"
JOIN_TIMEOUT_S = 60.0
OUTPUT_LIMIT = 1 << 24  # the subscriber's one JSON line of latencies

# (bus URL, messages, rate per second) -> when done; stamps each message's ``time`` itself
PublishSide = Callable[[str, int, float], Coroutine[Any, Any, None]]


async def publish_direct(url: str, messages: int, rate: float) -> None:
    """Publish ``messages`` messages, one per ``publish`` call, ``rate`` per second."""
    bus = open_bus(Settings(bus_url=url))
    try:
        start = time.monotonic()
        for seq in range(messages):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await bus.publish(
                [BusMessage("TaskCompleted", f"inst-{seq % 50}", "ws", seq, time.time())]
            )
    finally:
        await bus.aclose()


RELAY_PROCESS: JSONObject = {
    "schema": "cadenza/v1",
    "id": "bench-latency",
    "name": "bus latency",
    "nodes": [
        {"id": "a", "type": "transform", "config": {"output": {"n": 1}}},
        {"id": "b", "type": "transform", "config": {"output": {"n": 2}}},
    ],
    "edges": [{"from": "a", "to": "b"}],
}


async def publish_committed(url: str, messages: int, rate: float) -> None:
    """Start instances of ``RELAY_PROCESS`` at ``rate`` per second until cancelled (the
    subscriber counts events, not instances); the relay publishes what each commit wrote."""
    from cadenza.bootstrap import build
    from cadenza.domain.commands import StartInstance

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", bus_url=url)
        runtime = await build(settings)
        await runtime.start()
        try:
            stored = await runtime.definitions.publish(RELAY_PROCESS)
            start = time.monotonic()
            for n in itertools.count():
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                runtime.engine.post(StartInstance(stored.process_id, {}, version=stored.version))
        finally:
            await runtime.close()


PUBLISHERS: dict[str, PublishSide] = {"bus": publish_direct, "relay": publish_committed}


async def _probe_until_joined(url: str, joined: asyncio.Future[None]) -> None:
    bus = open_bus(Settings(bus_url=url))
    try:
        n = 0
        while not joined.done():
            await bus.publish([BusMessage(PROBE, f"probe-{n % 64}", "ws", n, time.time())])
            n += 1
            await asyncio.wait({joined}, timeout=0.05)
    finally:
        await bus.aclose()


async def run(url: str, messages: int, rate: float, publish: PublishSide) -> dict[str, object]:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bus_latency", "--subscriber", url, group, str(messages),
        stdout=asyncio.subprocess.PIPE, limit=OUTPUT_LIMIT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            prober = asyncio.create_task(_probe_until_joined(url, joined))
            assert (await proc.stdout.readline()).strip() == b"joined"
            joined.set_result(None)
            await prober
        publisher = asyncio.create_task(publish(url, messages, rate))
        line = asyncio.create_task(proc.stdout.readline())
        await asyncio.wait({publisher, line}, return_when=asyncio.FIRST_COMPLETED)
        if publisher.done() and not line.done():
            publisher.result()  # raises what failed
            await line
        publisher.cancel()  # the relay publisher runs until the subscriber has its count
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        out = json.loads(line.result())
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
    latencies: list[float] = out["latencies_ms"]
    return {
        "bus": open_bus(Settings(bus_url=url)).url,
        "messages": messages,
        "rate_per_s": rate,
        "received": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "max_ms": round(max(latencies, default=0.0), 3),
    }


async def subscriber(url: str, group: str, messages: int) -> None:
    """The other process: print ``joined`` at the first probe, then the latencies of
    ``messages`` messages as one JSON line."""
    bus: EventBus = open_bus(Settings(bus_url=url))
    latencies: list[float] = []
    seen: set[tuple[str, int]] = set()
    announced = False
    async for m in bus.subscribe(group):
        now = time.time()
        if m.type == PROBE:
            if not announced:
                print("joined", flush=True)
                announced = True
            continue
        if (m.instance_id, m.seq) in seen:
            continue  # at-least-once: a duplicate is not a second delivery
        seen.add((m.instance_id, m.seq))
        latencies.append((now - m.time) * 1000)
        if len(latencies) == messages:
            break
    print(json.dumps({"latencies_ms": latencies}), flush=True)
    await bus.aclose()


@contextlib.contextmanager
def server(kind: str) -> Iterator[str]:
    """A throwaway server of ``kind``; its bus URL."""
    if kind == "redis":
        from tests.redis_server import RedisServer

        redis = RedisServer.start()
        try:
            yield redis.url()
        finally:
            redis.stop()
    else:
        from tests.kafka_mock import KafkaMock

        kafka = KafkaMock.start()
        try:
            yield kafka.url()
        finally:
            kafka.stop()


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["--subscriber"]:
        asyncio.run(subscriber(args[1], args[2], int(args[3])))
        return
    p = argparse.ArgumentParser(prog="python -m bench.bus_latency", description=__doc__)
    p.add_argument("--bus", choices=["redis", "kafka"], required=True)
    p.add_argument("--messages", type=int, default=2_000)
    p.add_argument(
        "--rate", type=float, default=1_000.0, help="messages (relay: instances) per second"
    )
    p.add_argument(
        "--through",
        choices=sorted(PUBLISHERS),
        default="bus",
        help="bus: publish directly; relay: commit instances, the outbox relay publishes",
    )
    ns = p.parse_args(args)
    with server(ns.bus) as url:
        result = asyncio.run(run(url, ns.messages, ns.rate, PUBLISHERS[ns.through]))
    result["through"] = ns.through
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
