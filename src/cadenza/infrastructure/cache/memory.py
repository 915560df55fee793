"""The in-process cache (the contract's reference; tests share one between two services) and
the no-op cache used when no ``cache_url``/``redis_url`` is set (one process needs no shared
cache: its own in-process caches already hold what it read)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_ENTRIES = 10_000  # the in-process cache drops its least recently used entry beyond this


class MemoryCache:
    def __init__(self, max_value_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_value_bytes = max_value_bytes
        self._clock = clock
        self._values: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    @property
    def shared(self) -> bool:
        return True

    async def get(self, key: str) -> bytes | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._values[key]
            return None
        self._values.move_to_end(key)
        return found[0]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if len(value) > self._max_value_bytes:
            return
        self._values[key] = (bytes(value), self._clock() + ttl_s)
        self._values.move_to_end(key)
        while len(self._values) > MAX_ENTRIES:
            self._values.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def incr(self, key: str) -> int | None:
        found = await self.get(key)
        count = int(found) + 1 if found is not None and found.isdigit() else 1
        self._values[key] = (str(count).encode(), math.inf)  # counters do not expire
        self._values.move_to_end(key)
        return count

    async def aclose(self) -> None:
        self._values.clear()


class NoCache:
    @property
    def shared(self) -> bool:
        return False

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        return None

    async def delete(self, key: str) -> None:
        return None

    async def incr(self, key: str) -> int | None:
        return None

    async def aclose(self) -> None:
        return None
