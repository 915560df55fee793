"""The event bus between processes: committed domain events, published after commit.

Adapters: in-process (``memory://``, the default: one process, nothing crosses), Redis Streams
(``redis://``) and Kafka (``kafka://host:port,...``), chosen by ``CADENZA_BUS_URL``.

Contract (every adapter passes ``tests/contract/test_bus_contract.py``):
- ``publish`` returns once the bus has accepted the messages (at-least-once: a message may be
  delivered twice, never silently dropped once ``publish`` returned);
- messages with the same ``instance_id`` published by one publisher reach a subscriber in the
  order they were published (Kafka: key = instance id; Redis: one stream);
- ``subscribe(group)``: subscribers of one group share the messages (each to one of them);
  every group gets every message published after it first subscribed. A process that wants
  every message (the live feed, a worker's wake-ups) subscribes with a group of its own;
- consumers deduplicate on ``(instance_id, seq)`` (``cadenza.application.dedupe``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.domain.json import JSONObject


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One committed domain event as it crosses processes: small, never a payload."""

    type: str  # the event's type name, e.g. "TaskScheduled"
    instance_id: str
    workspace_id: str
    seq: int  # the event's sequence in its instance: the deduplication key with instance_id
    time: float  # when it was committed (epoch seconds)
    data: JSONObject = field(default_factory=dict)  # a few fields a consumer acts on

    @property
    def id(self) -> str:
        return f"{self.instance_id}:{self.seq}"


class EventBus(Protocol):
    @property
    def url(self) -> str:
        """Where it points, without credentials (for logs and readiness)."""
        ...

    @property
    def local(self) -> bool:
        """True for the in-process bus: nothing crosses processes, no outbox is needed."""
        ...

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        """Hand the messages to the bus (raises ``BusUnavailable`` if it cannot)."""
        ...

    def subscribe(self, group: str) -> AsyncIterator[BusMessage]:
        """Messages published from now on, for this consumer group (see the module doc).
        The iterator ends when the bus closes; closing the iterator leaves the group."""
        ...

    async def ping(self) -> None:
        """Raise ``BusUnavailable`` if the bus cannot be reached (readiness)."""
        ...

    async def aclose(self) -> None: ...


class BusUnavailable(Exception):
    """The bus cannot be reached (or refused the operation); the outbox keeps the events."""
