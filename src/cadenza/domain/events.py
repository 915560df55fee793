"""Domain events: past-tense facts journaled per instance (``instance_id, seq`` unique).

Every field is JSON-friendly so a journal can be stored, shipped and replayed as plain data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.status import ScopeStatus


@dataclass(frozen=True, kw_only=True)
class Event:
    """A fact about one instance. Built by the code that decides it with its own fields only
    (``TaskCompleted(task_id=..., ...)``, every field checked by mypy); ``Instance.record``
    fills in the envelope: the instance, a new event id and the time of the command."""

    type_name: ClassVar[str] = "Event"
    instance_id: str = ""
    event_id: str = ""
    occurred_at: float = 0.0

    def stamped(self, instance_id: str, event_id: str, occurred_at: float) -> Self:
        """This draft with its envelope filled in. In place, not a copy (``dataclasses.replace``
        would cost a second construction per journaled event on the engine's hot path): a
        draft is stamped once, by ``Instance.record``, before anything else holds it."""
        if self.event_id:
            raise ValueError(f"{self.type_name} {self.event_id} was recorded already")
        object.__setattr__(self, "instance_id", instance_id)
        object.__setattr__(self, "event_id", event_id)
        object.__setattr__(self, "occurred_at", occurred_at)
        return self

    def data(self) -> JSONObject:
        """The event's own fields as JSON (values are JSON already; tuples become lists)."""
        out: JSONObject = {}
        for name in _data_fields(type(self)):
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


_SKIP = frozenset({"instance_id", "event_id", "occurred_at"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _data_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _SKIP)
        _FIELDS[cls] = names
    return names


@dataclass(frozen=True, kw_only=True)
class InstanceStarted(Event):
    type_name: ClassVar[str] = "InstanceStarted"
    process_id: str
    version: int
    definition_hash: str
    inputs: JSONObject
    vars: JSONObject = field(default_factory=dict)
    parent_instance_id: str | None = None
    parent_task_id: str | None = None
    idempotency_key: str | None = None
    workspace_id: str = "default"
    depth: int = 0  # subprocess nesting: 0 for an instance no other instance started


@dataclass(frozen=True, kw_only=True)
class InstanceCompleted(Event):
    type_name: ClassVar[str] = "InstanceCompleted"
    outputs: JSONObject


@dataclass(frozen=True, kw_only=True)
class InstanceFailed(Event):
    type_name: ClassVar[str] = "InstanceFailed"
    error: str
    node_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class InstanceCancelled(Event):
    type_name: ClassVar[str] = "InstanceCancelled"
    reason: str


@dataclass(frozen=True, kw_only=True)
class InstanceResumed(Event):
    type_name: ClassVar[str] = "InstanceResumed"
    reason: str


@dataclass(frozen=True, kw_only=True)
class TaskScheduled(Event):
    """A node run was created: queued for a worker (``leased_to`` set when leased at once)."""

    type_name: ClassVar[str] = "TaskScheduled"
    task_id: str
    scope: str
    node_id: str
    node_type: str
    attempt: int
    available_at: float
    leased_to: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class TaskWaiting(Event):
    """A control node started and now waits on a timer, a signal, children or its body."""

    type_name: ClassVar[str] = "TaskWaiting"
    task_id: str
    scope: str
    node_id: str
    node_type: str
    detail: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TaskLeased(Event):
    type_name: ClassVar[str] = "TaskLeased"
    task_id: str
    leased_to: str
    lease_token: str
    lease_expires_at: float


@dataclass(frozen=True, kw_only=True)
class TaskCompleted(Event):
    type_name: ClassVar[str] = "TaskCompleted"
    task_id: str
    attempt: int
    output: JSON
    ports: tuple[str, ...]
    error: str | None = None  # set when on_error=continue replaced a failure by the default
    usage: JSONObject = field(default_factory=dict)  # tokens, cost, model, latency


@dataclass(frozen=True, kw_only=True)
class TaskStepRecorded(Event):
    """One durable step of a running task; a re-run after a crash replays it, not redoes it."""

    type_name: ClassVar[str] = "TaskStepRecorded"
    task_id: str
    index: int
    step: JSONObject


@dataclass(frozen=True, kw_only=True)
class TaskFailed(Event):
    type_name: ClassVar[str] = "TaskFailed"
    task_id: str
    attempt: int
    error: str
    handled: bool  # on_error=branch: the error port is taken and the instance goes on


@dataclass(frozen=True, kw_only=True)
class TaskRetryScheduled(Event):
    type_name: ClassVar[str] = "TaskRetryScheduled"
    task_id: str
    attempt: int  # the new attempt number
    error: str
    available_at: float


@dataclass(frozen=True, kw_only=True)
class TaskRequeued(Event):
    """A running task goes back to the queue: its lease expired (``charged``: counts toward
    ``max_requeues``), its holder gave it up by stopping (not charged), or its holder's process
    died and a restart of the same worker found it (``crashed``: not charged, but counts toward
    ``task_max_crashes`` of the attempt)."""

    type_name: ClassVar[str] = "TaskRequeued"
    task_id: str
    reason: str
    charged: bool = True
    crashed: bool = False


@dataclass(frozen=True, kw_only=True)
class TaskSkipped(Event):
    type_name: ClassVar[str] = "TaskSkipped"
    task_id: str
    scope: str
    node_id: str
    node_type: str


@dataclass(frozen=True, kw_only=True)
class TaskCancelled(Event):
    type_name: ClassVar[str] = "TaskCancelled"
    task_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class TaskReset(Event):
    """A failed or cancelled task is run again (manual retry), with a new attempt number."""

    type_name: ClassVar[str] = "TaskReset"
    task_id: str
    attempt: int
    available_at: float


@dataclass(frozen=True, kw_only=True)
class ScopeOpened(Event):
    type_name: ClassVar[str] = "ScopeOpened"
    scope: str
    parent_scope: str
    owner_node: str
    index: int
    item: JSON = None


@dataclass(frozen=True, kw_only=True)
class ScopeClosed(Event):
    type_name: ClassVar[str] = "ScopeClosed"
    scope: str
    status: ScopeStatus  # completed | failed | cancelled (journaled as the string)
    output: JSON = None
    stop: bool = False  # loop: `until` held
    error: str | None = None

    def __post_init__(self) -> None:
        # read back from a journal, the status is the plain string: make it the enum member
        object.__setattr__(self, "status", ScopeStatus(self.status))


@dataclass(frozen=True, kw_only=True)
class ChildStarted(Event):
    type_name: ClassVar[str] = "ChildStarted"
    task_id: str
    child_instance_id: str


@dataclass(frozen=True, kw_only=True)
class TaskTokens(Event):
    """Streamed model tokens of a running task: shown live, never journaled (seq 0)."""

    type_name: ClassVar[str] = "TaskTokens"
    task_id: str
    text: str


EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.type_name: cls
    for cls in (
        InstanceStarted,
        InstanceCompleted,
        InstanceFailed,
        InstanceCancelled,
        InstanceResumed,
        TaskScheduled,
        TaskWaiting,
        TaskLeased,
        TaskCompleted,
        TaskStepRecorded,
        TaskFailed,
        TaskRetryScheduled,
        TaskRequeued,
        TaskSkipped,
        TaskCancelled,
        TaskReset,
        ScopeOpened,
        ScopeClosed,
        ChildStarted,
    )
}

_TUPLE_FIELDS = {"ports"}


def event_from_data(
    type_name: str, instance_id: str, event_id: str, occurred_at: float, data: Mapping[str, JSON]
) -> Event:
    """Rebuild an event from its journal row; raises KeyError for an unknown type."""
    cls = EVENT_TYPES[type_name]
    kwargs: dict[str, object] = {
        k: (tuple(v) if k in _TUPLE_FIELDS and isinstance(v, list) else v) for k, v in data.items()
    }
    return cls(instance_id=instance_id, event_id=event_id, occurred_at=occurred_at, **kwargs)
