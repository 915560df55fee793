"""What the Kafka bus does beyond the shared contract, on librdkafka's mock cluster: a cluster
that goes away is reported, a group's offsets are pinned at its first join."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.kafka_mock import KafkaMock

from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.infrastructure.bus.kafka import KafkaBus

DEADLINE_S = 60.0


def message(seq: int, kind: str = "TaskCompleted", instance: str = "inst-1") -> BusMessage:
    return BusMessage(kind, instance, "ws-1", seq, time.time())


@pytest.fixture
def private_kafka() -> Iterator[KafkaMock]:
    mock = KafkaMock.start()
    yield mock
    mock.stop()


async def first(messages: AsyncIterator[BusMessage], bus: KafkaBus) -> BusMessage:
    """The first message of a subscription, publishing probes until one arrives."""
    got = asyncio.ensure_future(anext(messages))
    async with asyncio.timeout(DEADLINE_S):
        n = 0
        while not got.done():
            await bus.publish([message(n, "Probe", f"probe-{n % 64}")])
            n += 1
            await asyncio.wait({got}, timeout=0.05)
    return got.result()


async def drain(messages: AsyncIterator[BusMessage]) -> None:
    async for _ in messages:
        pass


async def test_a_group_gets_what_was_published_while_it_had_no_member(kafka_url: str) -> None:
    """Offsets are committed at the first assignment: a member joining later resumes there."""
    bus = KafkaBus(kafka_url)
    try:
        one = bus.subscribe("resumed")
        await first(one, bus)
        await one.aclose()  # type: ignore[attr-defined]
        await bus.publish([message(1), message(2)])
        two = bus.subscribe("resumed")
        got = []
        async with asyncio.timeout(DEADLINE_S):
            async for m in two:
                if m.type != "Probe":
                    got.append(m.seq)
                if got == [1, 2]:
                    break
        await two.aclose()  # type: ignore[attr-defined]
        assert got == [1, 2]
    finally:
        await bus.aclose()


async def test_a_subscription_and_publish_raise_bus_unavailable_when_kafka_goes_away(
    private_kafka: KafkaMock,
) -> None:
    # a short delivery timeout so that the publish after the stop fails fast; the probes go
    # through a bus with the default one (a busy machine may take over a second to deliver)
    bus = KafkaBus(private_kafka.url(topic="gone") + "&message.timeout.ms=1000")
    prober = KafkaBus(private_kafka.url(topic="gone"))
    messages = bus.subscribe("feed")
    await first(messages, prober)
    await prober.aclose()
    private_kafka.stop()
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(BusUnavailable, match=private_kafka.brokers):
            await drain(messages)
    with pytest.raises(BusUnavailable, match="publish"):
        await bus.publish([message(1)])
    await bus.aclose()
