"""What the Redis Streams bus does beyond the shared contract: groups left and cleaned up,
messages of a dead member claimed, the stream bounded, a server that goes away reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
import redis.asyncio
from tests.redis_server import RedisServer, RedisUnavailable

from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.infrastructure.bus import redis_streams
from cadenza.infrastructure.bus.codec import encode
from cadenza.infrastructure.bus.redis_streams import RedisStreamsBus

DEADLINE_S = 30.0


def message(seq: int, kind: str = "TaskCompleted") -> BusMessage:
    return BusMessage(kind, "inst-1", "ws-1", seq, time.time())


@pytest.fixture
async def raw(redis_bus_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_bus_url.partition("?")[0])
    yield client
    await client.aclose()


@pytest.fixture
async def bus(redis_bus_url: str) -> AsyncIterator[RedisStreamsBus]:
    bus = RedisStreamsBus(redis_bus_url)
    yield bus
    await bus.aclose()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start()
    except RedisUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


async def groups(raw: redis.asyncio.Redis, stream: str) -> dict[str, int]:
    """Group name -> number of consumers."""
    return {g["name"].decode(): int(g["consumers"]) for g in await raw.xinfo_groups(stream)}


async def first(messages: AsyncIterator[BusMessage], bus: RedisStreamsBus) -> BusMessage:
    """The first message of a subscription, publishing probes until one arrives."""
    got = asyncio.ensure_future(anext(messages))
    async with asyncio.timeout(DEADLINE_S):
        n = 0
        while not got.done():
            await bus.publish([message(n, "Probe")])
            n += 1
            await asyncio.wait({got}, timeout=0.02)
    return got.result()


def test_the_url_names_the_stream_and_never_the_password(redis_bus_url: str) -> None:
    bus = RedisStreamsBus(redis_bus_url)
    stream = redis_bus_url.partition("?stream=")[2]
    assert (
        bus.url
        == f"redis://127.0.0.1:{redis_bus_url.split(':')[3].split('/')[0]}/0?stream={stream}"
    )
    assert "@" not in bus.url
    assert (
        RedisStreamsBus("redis://localhost").url == "redis://localhost:6379/0?stream=cadenza:events"
    )


async def test_the_last_member_leaving_destroys_its_group(
    bus: RedisStreamsBus, raw: redis.asyncio.Redis
) -> None:
    one, two = bus.subscribe("workers"), bus.subscribe("workers")
    await first(one, bus)
    await first(two, bus)
    assert await groups(raw, bus.stream) == {"workers": 2}
    await one.aclose()  # type: ignore[attr-defined]
    assert await groups(raw, bus.stream) == {"workers": 1}
    await two.aclose()  # type: ignore[attr-defined]
    assert await groups(raw, bus.stream) == {}


async def test_a_member_leaving_hands_what_it_read_to_another(
    bus: RedisStreamsBus, raw: redis.asyncio.Redis
) -> None:
    await raw.xgroup_create(bus.stream, "workers", id="$", mkstream=True)
    for name in ("leaving", "staying"):
        await raw.xgroup_createconsumer(bus.stream, "workers", name)
    for seq in range(3):
        await raw.xadd(bus.stream, {"m": encode(message(seq))})
    await raw.xreadgroup("workers", "leaving", {bus.stream: ">"}, count=10)  # read, not taken
    left = await raw.eval(
        redis_streams._LEAVE, 1, bus.stream, "workers", "leaving", redis_streams.CLAIM_IDLE_MS
    )
    assert left == 1
    pending = await raw.xpending_range(bus.stream, "workers", "-", "+", 10)
    assert [p["consumer"] for p in pending] == [b"staying"] * 3
    assert all(int(p["time_since_delivered"]) >= redis_streams.CLAIM_IDLE_MS for p in pending)
    assert await groups(raw, bus.stream) == {"workers": 1}


async def test_groups_whose_consumers_all_went_idle_are_destroyed(
    bus: RedisStreamsBus, raw: redis.asyncio.Redis
) -> None:
    await raw.xgroup_create(bus.stream, "crashed", id="$", mkstream=True)
    await raw.xgroup_createconsumer(bus.stream, "crashed", "dead-process")
    live = bus.subscribe("alive")
    await first(live, bus)
    # every consumer idle for more than -1 ms: the crashed group's and the live one's alike
    destroyed = await raw.eval(redis_streams._CLEANUP, 1, bus.stream, -1)
    assert destroyed == 2
    assert await groups(raw, bus.stream) == {}
    await live.aclose()  # type: ignore[attr-defined]


async def test_a_dead_members_pending_messages_are_claimed_by_a_live_one(
    bus: RedisStreamsBus, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await raw.xgroup_create(bus.stream, "workers", id="$", mkstream=True)
    await raw.xadd(bus.stream, {"m": encode(message(7, "Held"))})
    held = await raw.xreadgroup("workers", "dead-process", {bus.stream: ">"}, count=10)
    assert len(cast(Any, held)[0][1]) == 1  # delivered to a consumer that then died without XACK
    monkeypatch.setattr(redis_streams, "CLAIM_IDLE_MS", 0)
    monkeypatch.setattr(redis_streams, "MAINTENANCE_S", 0.0)
    live = bus.subscribe("workers")
    got = await first(live, bus)
    assert (got.type, got.seq) == ("Held", 7)
    await live.aclose()  # type: ignore[attr-defined]


async def test_the_stream_is_trimmed_to_about_its_bound(
    bus: RedisStreamsBus, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_streams, "STREAM_MAXLEN", 10)
    for start in range(0, 1_000, 100):
        await bus.publish([message(i) for i in range(start, start + 100)])
    # MAXLEN ~ trims whole nodes of the stream (stream-node-max-entries: 100 by default)
    assert 10 <= await raw.xlen(bus.stream) <= 110


async def test_a_subscription_raises_bus_unavailable_when_redis_goes_away(
    private_redis: RedisServer,
) -> None:
    bus = RedisStreamsBus(private_redis.url())
    messages = bus.subscribe("feed")
    await first(messages, bus)
    private_redis.halt()
    with pytest.raises(BusUnavailable, match=f"127.0.0.1:{private_redis.port}"):
        async with asyncio.timeout(DEADLINE_S):
            await anext(messages)
    with pytest.raises(BusUnavailable, match="publish failed"):
        await bus.publish([message(1)])
    await bus.aclose()
