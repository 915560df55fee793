"""Commands: imperative requests that the engine turns into events, one batch at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.timers import TimerKind


@dataclass(frozen=True)
class StartInstance:
    process_id: str
    inputs: JSONObject
    version: int | None = None  # None: latest published
    idempotency_key: str | None = None
    parent_instance_id: str | None = None
    parent_task_id: str | None = None
    workspace_id: str = "default"  # the tenant; the definition must belong to it
    depth: int = 0  # subprocess nesting (the parent's depth + 1)
    inputs_checked: bool = False  # already checked against this version's schema, off the loop
    trace_context: str | None = None  # W3C traceparent of its span, stored on the instance


@dataclass(frozen=True)
class CompleteTask:
    instance_id: str
    task_id: str
    attempt: int
    lease_token: str
    output: JSON
    ports: tuple[str, ...] = ("out",)
    usage: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class RecordStep:
    """Journal one step of a running task (a model turn, a tool call) before going on."""

    instance_id: str
    task_id: str
    attempt: int
    lease_token: str
    step: JSONObject


@dataclass(frozen=True)
class FailTask:
    instance_id: str
    task_id: str
    attempt: int
    lease_token: str
    error: str
    retryable: bool = True


@dataclass(frozen=True)
class ExpireLease:
    instance_id: str
    task_id: str
    lease_token: str


@dataclass(frozen=True)
class RecordClaims:
    """Leases taken directly in the store (tasks that were queued) to journal and dispatch."""

    leases: tuple[tuple[str, str, str, int, float], ...]  # instance, task, token, attempt, expires


@dataclass(frozen=True)
class FireTimer:
    instance_id: str
    timer_id: str
    task_id: str | None
    kind: TimerKind


@dataclass(frozen=True)
class SignalTask:
    instance_id: str
    task_id: str
    payload: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class CancelInstance:
    instance_id: str
    reason: str = "cancelled by request"


@dataclass(frozen=True)
class RetryInstance:
    """Resume a failed instance from its failed nodes, reusing every recorded output."""

    instance_id: str
    task_id: str | None = None  # retry one failed task (and what its failure cancelled)


@dataclass(frozen=True)
class ChildFinished:
    instance_id: str  # the parent
    task_id: str
    child_instance_id: str
    status: str
    outputs: JSON = None
    error: str | None = None


Command = (
    StartInstance
    | CompleteTask
    | FailTask
    | RecordStep
    | ExpireLease
    | RecordClaims
    | FireTimer
    | SignalTask
    | CancelInstance
    | RetryInstance
    | ChildFinished
)


class Outcome(StrEnum):
    """What a command did (its text is what the API answers, e.g. ``{"result": "cancelled"}``)."""

    OK = "ok"  # a worker's report was recorded
    STALE = "stale"  # it came too late: the lease, task or timer it names moved on
    RENEWED = "renewed"  # the lease it would expire was renewed meanwhile
    RELEASED = "released"  # a released lease's task went back to the queue, not charged
    REQUEUED = "requeued"  # an expired lease's task went back to the queue
    FAILED = "failed"  # the task's lease expired too often: it failed
    FIRED = "fired"
    CANCELLED = "cancelled"
    ALREADY_FINISHED = "already finished"
    RESUMED = "resumed"
    APPROVED = "approved"
    REJECTED = "rejected"
    COMPLETED = "completed"  # a child instance completed (ChildFinished)
