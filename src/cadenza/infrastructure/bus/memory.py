"""The in-process bus (``memory://``): the default of one process, where nothing crosses.

Each group has one queue; a group's subscribers take turns on it. Bounded: a subscriber that
does not keep up loses the oldest messages of its group (the live feed re-reads the store).

``MemoryBus(remote=True)`` (tests) says it is not local: engines sharing one instance then
write the outbox and relay it exactly as with Redis or Kafka, so "another process" can be
tested with two runtimes in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from cadenza.application.ports_bus import BusMessage

MEMORY_BUS_URL = "memory://"
QUEUE_LIMIT = 10_000  # messages held per group before the oldest are dropped


class MemoryBus:
    def __init__(self, *, remote: bool = False) -> None:
        self._groups: dict[str, tuple[asyncio.Queue[BusMessage | None], int]] = {}
        self._closed = False
        self._remote = remote

    @property
    def url(self) -> str:
        return MEMORY_BUS_URL

    @property
    def local(self) -> bool:
        return not self._remote

    @property
    def groups(self) -> frozenset[str]:
        """The groups with a subscriber now (tests wait for a subscription with it)."""
        return frozenset(self._groups)

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        for queue, _ in self._groups.values():
            for message in messages:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(message)

    async def subscribe(self, group: str) -> AsyncIterator[BusMessage]:
        if self._closed:
            return
        queue, members = self._groups.get(group, (asyncio.Queue(QUEUE_LIMIT), 0))
        self._groups[group] = (queue, members + 1)
        try:
            while (message := await queue.get()) is not None:
                yield message
            queue.put_nowait(None)  # the bus closed: wake the group's other subscribers too
        finally:
            queue, members = self._groups[group]
            if members <= 1:
                self._groups.pop(group, None)
            else:
                self._groups[group] = (queue, members - 1)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._closed = True
        for queue, _ in self._groups.values():
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
