"""The event bus chosen by ``Settings.bus_url``: the one place that maps a URL scheme to an
adapter. Only the adapter in use is imported (confluent_kafka loads librdkafka)."""

from __future__ import annotations

from urllib.parse import urlsplit

from cadenza.application.ports_bus import EventBus
from cadenza.settings import Settings

BUS_SCHEMES = ("memory", "redis", "rediss", "kafka")


def open_bus(settings: Settings) -> EventBus:
    """The bus for ``settings.bus_url`` (not connected yet: the first call connects; ``ping``
    checks). Raises ``ValueError`` for a scheme no adapter serves."""
    url = settings.bus_url
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from cadenza.infrastructure.bus.memory import MemoryBus

        return MemoryBus()
    if scheme in ("redis", "rediss"):
        from cadenza.infrastructure.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url)
    if scheme == "kafka":
        from cadenza.infrastructure.bus.kafka import KafkaBus

        return KafkaBus(url)
    raise ValueError(
        f"bus_url (CADENZA_BUS_URL) must start with one of "
        f"{', '.join(s + '://' for s in BUS_SCHEMES)} (got scheme {scheme!r})"
    )
