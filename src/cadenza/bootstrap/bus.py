"""The event bus named by ``CADENZA_BUS_URL``: one place to add a kind of bus."""

from __future__ import annotations

from cadenza.application.ports_bus import EventBus
from cadenza.infrastructure.bus.memory import MEMORY_BUS_URL, MemoryBus
from cadenza.settings import Settings


def open_bus(settings: Settings) -> EventBus:
    """``memory://``: the in-process bus; any other URL is refused here (the Redis Streams and
    Kafka adapters are wired by their own change)."""
    if settings.bus_url == MEMORY_BUS_URL:
        return MemoryBus()
    raise ValueError(f"unsupported bus_url {settings.bus_url!r}: expected {MEMORY_BUS_URL}")
