"""The engine's seams as small Protocols: clock and ids, templates, outbound HTTP and the
store; the node executor port is in ``ports_nodes``, the others in ``ports_*.py``. Adapters
live in ``infrastructure``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.application.audit_ports import AuditEntry
from cadenza.domain.events import Event
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.pii import Redacted
from cadenza.domain.tasks import Task


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class IdGenerator(Protocol):
    def __call__(self) -> str: ...


# ---- templates -------------------------------------------------------------------------------
class TemplateError(Exception):
    """A template or expression failed to parse or to evaluate; the message says why."""


class Templates(Protocol):
    """Sandboxed templates: ``{{ }}`` in strings of any JSON value, and bare expressions."""

    def check_template(self, text: str) -> str | None:
        """None when ``text`` parses as a template, else the reason it does not."""
        ...

    def check_expression(self, text: str) -> str | None:
        """None when ``text`` parses as a bare expression, else the reason it does not."""
        ...

    async def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        """Render every string in ``value``; a string that is exactly one ``{{ expr }}`` keeps
        the expression's JSON type. Raises TemplateError, also when the render exceeds its
        time, step or size budget; cancelling the caller stops the render."""
        ...

    async def evaluate(self, expression: str, context: Mapping[str, object]) -> JSON:
        """Evaluate a bare expression to a JSON value. Raises TemplateError (budget as
        ``render``)."""
        ...

    def renders_inline(self, value: JSON, expressions: Sequence[str]) -> bool:
        """True when rendering ``value`` and evaluating ``expressions`` runs on the caller's
        thread (no loops, no calls: microseconds), so the engine may do it inside a decision
        step; False when it needs a render thread."""
        ...


# ---- outbound HTTP ---------------------------------------------------------------------------
class EgressDenied(Exception):
    """The egress guard refused a destination (private, loopback, metadata, bad scheme, ...)."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str  # after redirects


class HttpClient(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send through the egress guard. Raises EgressDenied, TimeoutError or OSError."""
        ...


# ---- persistence -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredDefinition:
    process_id: str
    version: int
    content_hash: str
    status: str  # draft | published | archived
    document: JSONObject
    created_at: float
    workspace_id: str = "default"


@dataclass(frozen=True)
class InstanceRow:
    id: str
    process_id: str
    version: int
    status: str
    inputs: JSONObject
    outputs: JSONObject | None
    error: str | None
    parent_instance_id: str | None
    created_at: float
    updated_at: float
    seq: int
    workspace_id: str = "default"
    trace_context: str | None = None  # W3C traceparent of the instance's span (new rows only)
    # PII redaction: where the API's copy of inputs/outputs/error was redacted (shown rows)
    redacted: tuple[tuple[str, Redacted], ...] = ()  # (column, path and detectors)
    # an error offloaded to the blob store (shown rows): its blob marker; ``error`` is then
    # the marker's preview, and the lazy payload route serves the whole text
    error_payload: JSONObject | None = None


@dataclass(frozen=True)
class LeaseInfo:
    task_id: str
    instance_id: str
    status: str
    attempt: int
    leased_to: str | None
    lease_token: str | None
    lease_expires_at: float | None


@dataclass(frozen=True)
class Timer:
    id: str
    instance_id: str
    task_id: str | None
    kind: str  # wait | approval_timeout | task_timeout | instance_timeout
    fire_at: float


@dataclass(frozen=True)
class InstanceHeader:
    """What a transaction needs to load an instance: its definition and the newest seq."""

    id: str
    process_id: str
    version: int
    seq: int
    trace_context: str | None = None  # the span its tasks' spans join, in any process


@dataclass(frozen=True)
class OutboxRow:
    """One committed event for the bus (``ports_bus.BusMessage``), written with it when the
    bus crosses processes. ``data`` holds ``workspace_id`` and what consumers act on
    (``wake_at``: when a task this commit queued or a timer it set is due; ``by``: the
    committing engine). ``id`` orders the outbox (0 until stored)."""

    instance_id: str
    seq: int
    type: str
    data: JSONObject
    created_at: float
    id: int = 0


# publishes taken outbox rows; raising leaves them in the outbox (``Store.relay_outbox``)
OutboxPublish = Callable[[Sequence[OutboxRow]], Awaitable[None]]


@dataclass
class Changes:
    """Everything one group commit writes, collected from the touched aggregates."""

    new_instances: list[InstanceRow] = field(default_factory=list)
    updated_instances: list[InstanceRow] = field(default_factory=list)
    new_tasks: list[tuple[str, Task]] = field(default_factory=list)  # (instance_id, task)
    updated_tasks: list[tuple[str, Task]] = field(default_factory=list)
    events: list[tuple[int, Event]] = field(default_factory=list)  # (seq, event)
    new_timers: list[Timer] = field(default_factory=list)
    deleted_timers: list[str] = field(default_factory=list)
    idempotency_keys: list[tuple[str, str]] = field(default_factory=list)  # (key, instance_id)
    outbox: list[OutboxRow] = field(default_factory=list)  # only when the bus is not local
    # audit rows of the batch's commands from the API (instance start, cancel, signal, ...):
    # committed with their change; only the SQL stores are given any (docs/audit.md)
    audit: list[AuditEntry] = field(default_factory=list)


class Transaction(Protocol):
    async def lock_instances(self, ids: Sequence[str]) -> dict[str, InstanceHeader]:
        """Lock the rows (in id order) and return their headers; unknown ids are absent."""
        ...

    async def events_after(self, instance_id: str, seq: int) -> list[Event]: ...

    async def lock_tasks(self, task_ids: Sequence[str]) -> dict[str, LeaseInfo]: ...

    async def definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        """A definition version; ``None`` version means the latest published one."""
        ...

    async def instance_by_idempotency_key(self, key: str) -> str | None: ...

    async def timers_for(self, instance_id: str) -> list[Timer]: ...

    async def save(self, changes: Changes) -> None: ...


class Store(Protocol):
    """The durable store. Claims and renewals are single statements outside advances."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def put_definition(self, definition: StoredDefinition) -> StoredDefinition:
        """Store a version; an identical document already stored is returned instead."""
        ...

    async def get_definition(
        self, process_id: str, version: int | None
    ) -> StoredDefinition | None: ...

    async def claim(
        self, owner: str, limit: int, now: float, lease_s: float, new_token: IdGenerator
    ) -> list[LeaseInfo]:
        """Atomically lease up to ``limit`` scheduled tasks that are available at ``now``."""
        ...

    async def renew(self, owner: str, until: float) -> int:
        """Extend every lease ``owner`` holds to ``until`` (``RELEASED`` gives them up)."""
        ...

    async def release_previous(self, owner: str, holder: str) -> int:
        """Give up the leases of ``owner``'s earlier incarnations: those held by ``owner`` or
        ``owner/<incarnation>`` other than ``holder``; their timer claims (``claim_timers``)
        end too. Their process died (a clean stop released them already, and those stay
        ``RELEASED``): the leases are marked ``CRASHED``. The number of leases marked."""
        ...

    async def expired_leases(self, now: float, limit: int) -> list[LeaseInfo]: ...

    async def claim_timers(
        self, holder: str, now: float, limit: int, claim_s: float
    ) -> list[Timer]:
        """Atomically take up to ``limit`` timers due at ``now``, in ``fire_at`` order, that
        are not claimed or whose claim ended (at or before ``now``); each is marked claimed
        by ``holder`` until ``now + claim_s``. Concurrent claims get disjoint timers (``FOR
        UPDATE SKIP LOCKED``; SQLite: under the write lock). Firing a timer deletes it; one
        its claimer never fired (it died) is claimed again once its claim ended, or at once
        after ``release_previous`` of the claimer's owner (a restart)."""
        ...

    async def unfinished_instances(self) -> list[str]: ...

    async def get_instance(self, instance_id: str) -> InstanceRow | None: ...

    async def list_instances(
        self, limit: int = 100, status: str | None = None
    ) -> list[InstanceRow]: ...

    async def journal(self, instance_id: str) -> list[tuple[int, Event]]: ...

    async def task_rows(self, instance_id: str) -> list[JSONObject]: ...

    async def probe(self) -> None:
        """A write that changes nothing; raises ``StoreUnavailable`` while writes fail."""
        ...

    # ---- the outbox (application/relay.py) ----
    async def relay_outbox(self, limit: int, publish: OutboxPublish) -> int | None:
        """In one transaction: take up to ``limit`` outbox rows in id order, skipping rows
        another relay holds (``FOR UPDATE SKIP LOCKED``; SQLite: under the write lock), await
        ``publish(rows)``, delete them. ``publish`` raising rolls back: the rows stay. The
        number relayed, or ``None`` when another relay holds older rows (per-instance order:
        the caller tries again shortly)."""
        ...

    async def outbox_backlog(self) -> int:
        """Outbox rows not relayed yet."""
        ...

    async def close(self) -> None: ...


RELEASED = 0.0  # lease_expires_at of a lease its holder gave up (a clean stop)
# lease_expires_at of a lease whose holder's process died: a restart of the same worker identity
# found it (``release_previous``). Re-queued uncharged, but counted toward ``task_max_crashes``.
CRASHED = -1.0


class StoreConflict(Exception):
    """A concurrent writer won (deadlock, serialization failure, duplicate journal seq): retry."""


class StoreUnavailable(Exception):
    """The store cannot be reached or cannot write (connection lost, server restarting, disk
    full): nothing was committed; the same work may succeed once the fault clears."""
