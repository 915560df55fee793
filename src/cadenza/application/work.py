"""What the engine hands to the local worker, and the slots that bound it (back-pressure)."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.domain.definition import Node
from cadenza.domain.json import JSONObject


@dataclass(frozen=True)
class Work:
    instance_id: str
    task_id: str
    scope: str
    node: Node
    attempt: int
    lease_token: str
    context: dict[str, object]
    idempotency_key: str
    steps: tuple[JSONObject, ...] = ()
    workspace_id: str = "default"
    trace_context: str | None = None  # the instance's span (W3C traceparent), if traced


class Capacity:
    """In-flight slots of the local worker; the engine leases at once only while one is free."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def reserve(self, n: int) -> None:
        """Hold ``n`` slots for work not known yet (a claim in flight), even past the limit."""
        self.used += n

    def give_back(self, n: int = 1) -> None:
        self.used = max(0, self.used - n)
