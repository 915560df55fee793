"""A consumer's subscription outlives the bus dropping it, and passes each message once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tests.integration.bus_helpers import until

from cadenza.application.following import follow
from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.infrastructure.bus.memory import MemoryBus


class DroppingBus(MemoryBus):
    """Refuses the first ``drops`` subscriptions, as a bus that is away would."""

    drops = 1

    def subscribe(self, group: str) -> AsyncIterator[BusMessage]:
        if self.drops:
            self.drops -= 1
            return self._refused()
        return super().subscribe(group)

    async def _refused(self) -> AsyncIterator[BusMessage]:
        nothing: tuple[BusMessage, ...] = ()
        for message in nothing:  # an async generator, as subscriptions are, failing at once
            yield message
        raise BusUnavailable("connection refused")


async def test_a_dropped_subscription_is_reopened_and_duplicates_are_dropped() -> None:
    bus = DroppingBus(remote=True)
    got: list[BusMessage] = []
    opened: list[int] = []
    task = asyncio.create_task(follow(bus, "g", got.append, on_open=lambda: opened.append(1)))
    try:
        await until(lambda: "g" in bus.groups, "the second subscription")
        first, second = (BusMessage("TaskCompleted", "i", "default", s, 0.0) for s in (1, 2))
        await bus.publish([first, first, second])  # a relay's republish after a crash
        await until(lambda: len(got) == 2, "both messages")
        assert got == [first, second]
        assert len(opened) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.aclose()
