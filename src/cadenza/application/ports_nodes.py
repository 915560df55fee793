"""The node executor port: what an executor is given, what it returns, what it raises.

The engine hands each task's attempt to the ``NodeExecutor`` of its node type as a
``NodeCall`` (the node, its template context, the attempt's identity and idempotency key,
the steps an earlier run of the attempt journaled) and stores the ``NodeResult``; a
``NodeFailure`` says whether another attempt may help. Executors live in
``application/nodes``; the engine's side is ``application/engine/handlers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.domain.definition import Node
from cadenza.domain.json import JSON, JSONObject


class NodeFailure(Exception):
    """An executor's failure; ``retryable`` says whether another attempt may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class NodeCall:
    """What an executor gets: the node, the template context and the attempt's identity."""

    instance_id: str
    task_id: str
    node: Node
    attempt: int
    idempotency_key: str  # instance:node:iteration:attempt, sent with every side effect
    context: Mapping[str, object]
    steps: tuple[JSONObject, ...] = ()  # steps journaled by an earlier run of this attempt
    record_step: StepRecorder | None = None
    on_tokens: Callable[[str], None] | None = None  # live, not journaled
    workspace_id: str = "default"  # the instance's tenant (agents are chosen within it)
    secrets: SecretAccess | None = None  # the tenant's secrets, for egress fields only


class SecretAccess(Protocol):
    async def reveal(self, names: Collection[str]) -> Mapping[str, str]:
        """The values of the task workspace's secrets ``names``, each registered for redaction
        first. Raises NodeFailure (not set, not configured)."""
        ...


class LeaseLost(Exception):
    """The task's lease moved to another worker: stop without reporting."""


class StepRecorder(Protocol):
    async def __call__(self, step: JSONObject) -> None:
        """Journal ``step`` durably before going on. Raises LeaseLost."""
        ...


@dataclass(frozen=True)
class NodeResult:
    output: JSON
    ports: tuple[str, ...] = ("out",)
    usage: JSONObject = field(default_factory=dict)


class NodeExecutor(Protocol):
    async def execute(self, call: NodeCall) -> NodeResult:
        """Run one attempt. Raise NodeFailure for an expected failure."""
        ...
