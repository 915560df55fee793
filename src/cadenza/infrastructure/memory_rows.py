"""The in-memory store's rows: immutable records whose JSON values are held encoded.

A record is what one table row of the SQL store holds. JSON values are kept as encoded text,
as a JSON column keeps them: encoding on the way in and decoding on the way out gives every
caller its own copy (no aliasing between a caller's objects and a stored row) and the same
value conversions a database gives (tuples come back as lists, values that are not JSON
fail on the way in).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import cast

from cadenza.application.ports import InstanceRow, LeaseInfo, OutboxRow, StoredDefinition, Timer
from cadenza.domain.events import Event, event_from_data
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.tasks import Task

LIVE = frozenset({"scheduled", "running"})  # the statuses claims and lease scans look at


def encode(value: JSON) -> str:
    return json.dumps(value)


def decode(text: str) -> JSON:
    return cast("JSON", json.loads(text))


def decode_object(text: str) -> JSONObject:
    return cast("JSONObject", json.loads(text))


@dataclass(frozen=True, slots=True)
class DefinitionRecord:
    process_id: str
    version: int
    content_hash: str
    status: str
    document: str
    created_at: float
    workspace_id: str

    @classmethod
    def of(cls, d: StoredDefinition, version: int) -> DefinitionRecord:
        return cls(
            d.process_id,
            version,
            d.content_hash,
            d.status,
            encode(d.document),
            d.created_at,
            d.workspace_id,
        )

    def value(self) -> StoredDefinition:
        return StoredDefinition(
            self.process_id,
            self.version,
            self.content_hash,
            self.status,
            decode_object(self.document),
            self.created_at,
            self.workspace_id,
        )


def find_definition(
    rows: Mapping[tuple[str, int], DefinitionRecord], process_id: str, version: int | None
) -> DefinitionRecord | None:
    """A version of a process; ``None`` means the latest published one."""
    if version is not None:
        return rows.get((process_id, version))
    published = [r for (p, _), r in rows.items() if p == process_id and r.status == "published"]
    return max(published, key=lambda r: r.version, default=None)


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    id: str
    process_id: str
    version: int
    status: str
    inputs: str
    outputs: str
    error: str | None
    parent_instance_id: str | None
    created_at: float
    updated_at: float
    seq: int
    workspace_id: str
    idempotency_key: str | None
    trace_context: str | None = None

    @classmethod
    def of(cls, r: InstanceRow, key: str | None) -> InstanceRecord:
        return cls(
            r.id,
            r.process_id,
            r.version,
            r.status,
            encode(r.inputs),
            encode(r.outputs),
            r.error,
            r.parent_instance_id,
            r.created_at,
            r.updated_at,
            r.seq,
            r.workspace_id,
            key,
            r.trace_context,
        )

    def updated(self, r: InstanceRow) -> InstanceRecord:
        """The state columns an advance writes (the SQL store's UPDATE sets the same ones)."""
        return replace(
            self,
            status=r.status,
            outputs=encode(r.outputs),
            error=r.error,
            updated_at=r.updated_at,
            seq=r.seq,
        )

    def value(self) -> InstanceRow:
        outputs = decode(self.outputs)
        return InstanceRow(
            id=self.id,
            process_id=self.process_id,
            version=self.version,
            status=self.status,
            inputs=decode_object(self.inputs),
            outputs=outputs if isinstance(outputs, dict) else None,
            error=self.error,
            parent_instance_id=self.parent_instance_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            seq=self.seq,
            workspace_id=self.workspace_id,
            trace_context=self.trace_context,
        )


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task row; ``order`` is the insertion order, the tie-break of equal times."""

    id: str
    instance_id: str
    scope: str
    node_id: str
    node_type: str
    status: str
    attempt: int
    available_at: float
    output: str
    error: str | None
    ports: tuple[str, ...]
    handled: bool
    detail: str
    usage: str | None
    leased_to: str | None
    lease_token: str | None
    lease_expires_at: float | None
    created_at: float
    updated_at: float
    order: int

    @classmethod
    def of(cls, instance_id: str, t: Task, order: int) -> TaskRecord:
        return cls(
            t.id,
            instance_id,
            t.scope,
            t.node_id,
            t.node_type,
            t.status.value,
            t.attempt,
            t.available_at,
            encode(t.output),
            t.error,
            tuple(t.ports),
            t.handled,
            encode(t.detail),
            encode(t.usage) if t.usage else None,
            t.leased_to,
            t.lease_token,
            t.lease_expires_at,
            t.created_at,
            t.updated_at,
            order,
        )

    def updated(self, t: Task) -> TaskRecord:
        """The state columns, and the lease columns when the lease changed (as in SQL)."""
        lease = t if t.lease_changed else self
        return TaskRecord(
            self.id,
            self.instance_id,
            self.scope,
            self.node_id,
            self.node_type,
            t.status.value,
            t.attempt,
            t.available_at,
            encode(t.output),
            t.error,
            tuple(t.ports),
            t.handled,
            encode(t.detail),
            encode(t.usage) if t.usage else None,
            lease.leased_to,
            lease.lease_token,
            lease.lease_expires_at,
            self.created_at,
            t.updated_at,
            self.order,
        )

    def lease(self) -> LeaseInfo:
        return LeaseInfo(
            task_id=self.id,
            instance_id=self.instance_id,
            status=self.status,
            attempt=self.attempt,
            leased_to=self.leased_to,
            lease_token=self.lease_token,
            lease_expires_at=self.lease_expires_at,
        )

    def row(self) -> JSONObject:
        """The row as ``Store.task_rows`` gives it: every column of the SQL ``tasks`` table."""
        return {
            "id": self.id,
            "instance_id": self.instance_id,
            "scope": self.scope,
            "node_id": self.node_id,
            "node_type": self.node_type,
            "status": self.status,
            "attempt": self.attempt,
            "available_at": self.available_at,
            "output": decode(self.output),
            "error": self.error,
            "ports": list(self.ports),
            "handled": self.handled,
            "detail": decode(self.detail),
            "usage": None if self.usage is None else decode(self.usage),
            "leased_to": self.leased_to,
            "lease_token": self.lease_token,
            "lease_expires_at": self.lease_expires_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class EventRecord:
    instance_id: str
    event_id: str
    type: str
    data: str
    occurred_at: float

    @classmethod
    def of(cls, e: Event) -> EventRecord:
        return cls(e.instance_id, e.event_id, e.type_name, encode(e.data()), e.occurred_at)

    def value(self) -> Event:
        return event_from_data(
            self.type, self.instance_id, self.event_id, self.occurred_at, decode_object(self.data)
        )


@dataclass
class Tables:
    """Committed rows, with the indexes the store's scans use."""

    definitions: dict[tuple[str, int], DefinitionRecord] = field(default_factory=dict)
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> instance id
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    live: dict[str, None] = field(default_factory=dict)  # ids of scheduled and running tasks
    by_instance: dict[str, list[str]] = field(default_factory=dict)  # instance -> task ids
    events: dict[str, dict[int, EventRecord]] = field(default_factory=dict)  # instance -> seq
    timers: dict[str, Timer] = field(default_factory=dict)
    orders: int = 0  # the last ``TaskRecord.order`` handed out
    outbox: dict[int, OutboxRow] = field(default_factory=dict)  # id -> row, in id order
    outbox_id: int = 0  # the last outbox id handed out

    def put_task(self, record: TaskRecord) -> None:
        if record.id not in self.tasks:
            self.by_instance.setdefault(record.instance_id, []).append(record.id)
        self.tasks[record.id] = record
        if record.status in LIVE:
            self.live[record.id] = None
        else:
            self.live.pop(record.id, None)
