"""The event bus contract (``cadenza.application.ports_bus``), the same for every adapter:
in-process, Redis Streams (a real ``redis-server``) and Kafka (librdkafka's mock cluster).

Each bus instance stands for a process (the in-process bus is one object shared by all).
A subscription is known to have joined once it received a probe: tests publish probes until
every subscriber saw one, then the messages they check (probes are left out of the checks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from tests.net import free_port

from cadenza.application.ports_bus import BusMessage, BusUnavailable, EventBus
from cadenza.bootstrap.bus import open_bus
from cadenza.settings import Settings

DEADLINE_S = 60.0  # a condition not met by then fails the test (Kafka joins take ~3 s)
PROBE = "Probe"
ADAPTERS = ["memory", "redis", "kafka"]

Buses = Callable[[], EventBus]


def message(instance: str, seq: int, kind: str = "TaskCompleted") -> BusMessage:
    return BusMessage(kind, instance, "ws-1", seq, time.time(), {"node": f"n{seq}"})


class Subscriber:
    """A task iterating ``bus.subscribe(group)`` into ``received`` (probes apart)."""

    def __init__(self, bus: EventBus, group: str) -> None:
        self.received: list[BusMessage] = []
        self.probes = 0
        self.task = asyncio.create_task(self._run(bus.subscribe(group)))

    async def _run(self, messages: AsyncIterator[BusMessage]) -> None:
        async for m in messages:
            if m.type == PROBE:
                self.probes += 1
            else:
                self.received.append(m)

    async def wait_for(self, count: int) -> None:
        await until(lambda: len(self.received) >= count, self)


async def until(condition: Callable[[], bool], *subscribers: Subscriber) -> None:
    """Wait until ``condition`` holds (checked as messages arrive), failing at DEADLINE_S or
    when a subscription ends first."""
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            for s in subscribers:
                if s.task.done():
                    s.task.result()  # raise what ended it
                    pytest.fail("a subscription ended before the condition held")
            await asyncio.sleep(0.005)


async def join(bus: EventBus, subscribers: Sequence[Subscriber]) -> None:
    """Publish probes (of changing instances, so every Kafka partition gets some) until every
    subscriber received one after this call began."""
    seen = [s.probes for s in subscribers]
    n = 0
    async with asyncio.timeout(DEADLINE_S):
        while any(s.probes == before for s, before in zip(subscribers, seen, strict=True)):
            await bus.publish([message(f"probe-{n % 64}", n, PROBE)])
            n += 1
            await asyncio.sleep(0.02)  # pacing only: the loop waits for the probes themselves


def by_instance(messages: Sequence[BusMessage]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for m in messages:
        out.setdefault(m.instance_id, []).append(m.seq)
    return out


@pytest.fixture(params=ADAPTERS)
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue(
        f"{request.param}_bus_url" if request.param == "redis" else "kafka_url"
    )
    return url


@pytest.fixture
async def buses(bus_url: str) -> AsyncIterator[Buses]:
    """A factory of buses on one URL, each standing for a process; all closed at the end."""
    opened: list[EventBus] = []

    def new() -> EventBus:
        if bus_url == "memory://" and opened:
            return opened[0]  # one process: the one in-process bus
        opened.append(open_bus(Settings(bus_url=bus_url)))
        return opened[-1]

    yield new
    for bus in opened:
        await bus.aclose()


async def test_local_is_true_only_for_the_in_process_bus(bus_url: str, buses: Buses) -> None:
    bus = buses()
    assert bus.local is (bus_url == "memory://")
    await bus.ping()


async def test_a_subscriber_gets_every_message_published_after_it_joined(buses: Buses) -> None:
    publisher, subscriber_bus = buses(), buses()
    sub = Subscriber(subscriber_bus, "feed-a")
    await join(publisher, [sub])
    sent = [message(f"inst-{i % 3}", i) for i in range(10)]
    await publisher.publish(sent[:4])
    await publisher.publish(sent[4:])
    await sub.wait_for(10)
    assert sorted(sub.received, key=lambda m: m.seq) == sent


async def test_every_group_gets_every_message(buses: Buses) -> None:
    publisher = buses()
    one, two = Subscriber(buses(), "group-1"), Subscriber(buses(), "group-2")
    await join(publisher, [one, two])
    sent = [message(f"inst-{i % 5}", i) for i in range(40)]
    await publisher.publish(sent)
    await one.wait_for(40)
    await two.wait_for(40)
    assert sorted(one.received, key=lambda m: m.seq) == sent
    assert sorted(two.received, key=lambda m: m.seq) == sent


async def test_subscribers_of_one_group_share_its_messages(buses: Buses) -> None:
    publisher = buses()
    first = Subscriber(buses(), "workers")
    await join(publisher, [first])
    second = Subscriber(buses(), "workers")
    await join(publisher, [first, second])
    sent = [message(f"inst-{i % 16}", i) for i in range(64)]
    await publisher.publish(sent)
    await until(lambda: len(first.received) + len(second.received) >= 64, first, second)
    shared = sorted(first.received + second.received, key=lambda m: m.seq)
    assert shared == sent  # each message to exactly one of them


async def test_messages_of_one_instance_arrive_in_publish_order(buses: Buses) -> None:
    publisher = buses()
    sub = Subscriber(buses(), "ordered")
    await join(publisher, [sub])
    sent = [message(f"inst-{i}", seq) for seq in range(25) for i in range(20)]  # interleaved
    for start in range(0, len(sent), 37):
        await publisher.publish(sent[start : start + 37])
    await sub.wait_for(len(sent))
    assert by_instance(sub.received) == {f"inst-{i}": list(range(25)) for i in range(20)}


async def test_a_group_joining_later_gets_no_older_messages(buses: Buses) -> None:
    publisher = buses()
    early = Subscriber(buses(), "early")
    await join(publisher, [early])
    before = [message("inst-old", i) for i in range(5)]
    await publisher.publish(before)
    await early.wait_for(5)
    late = Subscriber(buses(), "late")
    await join(publisher, [late])
    after = [message("inst-new", i) for i in range(5)]
    await publisher.publish(after)
    await late.wait_for(5)
    await early.wait_for(10)
    assert late.received == after
    assert early.received == before + after


async def test_closing_the_bus_ends_its_subscriptions(buses: Buses) -> None:
    bus = buses()
    sub = Subscriber(bus, "closing")
    await join(bus, [sub])
    await bus.aclose()
    async with asyncio.timeout(DEADLINE_S):
        await sub.task
    assert [m async for m in bus.subscribe("after-close")] == []


@pytest.mark.parametrize("scheme", ["redis", "kafka"])
async def test_an_unreachable_bus_raises_bus_unavailable(scheme: str) -> None:
    port = free_port()  # nothing listens there
    url = (
        f"redis://127.0.0.1:{port}/0"
        if scheme == "redis"
        else f"kafka://127.0.0.1:{port}?topic=nowhere&message.timeout.ms=1000"
    )
    bus = open_bus(Settings(bus_url=url))
    try:
        with pytest.raises(BusUnavailable, match=f"127.0.0.1:{port}"):
            await bus.ping()
        with pytest.raises(BusUnavailable, match=f"127.0.0.1:{port}"):
            await bus.publish([message("inst-1", 1)])
    finally:
        await bus.aclose()


def test_an_unknown_bus_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must start with one of memory://, redis://"):
        open_bus(Settings(bus_url="amqp://localhost"))
