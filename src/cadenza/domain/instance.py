"""The process instance aggregate: tasks and scopes of one run, rebuilt from its journal.

Every change is an event applied through ``_apply``; loading an instance is replaying its
events, so the journal is the truth and the instance/task rows are projections of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from cadenza.domain import events as ev
from cadenza.domain.errors import Conflict
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.status import (
    ACTIVE_TASK,
    InstanceStatus,
    ScopeStatus,
    TaskStatus,
    transition_instance,
    transition_task,
)

ROOT_SCOPE = ""


@dataclass(frozen=True)
class Stamp:
    """Time and identity for the events one command records (the domain has no clock)."""

    now: float
    new_id: Callable[[], str]


@dataclass
class Task:
    id: str
    scope: str
    node_id: str
    node_type: str
    status: TaskStatus
    created_at: float
    updated_at: float
    attempt: int = 1
    available_at: float = 0.0
    output: JSON = None
    error: str | None = None
    ports: tuple[str, ...] = ()
    handled: bool = False
    detail: JSONObject = field(default_factory=dict)
    leased_to: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    lease_changed: bool = False
    steps: list[JSONObject] = field(default_factory=list)  # of the current attempt
    usage: JSONObject = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_TASK


@dataclass
class Scope:
    key: str
    parent: str
    owner: str
    index: int
    path: tuple[str, ...]
    item: JSON = None
    status: ScopeStatus = ScopeStatus.ACTIVE
    output: JSON = None
    stop: bool = False
    error: str | None = None


def child_scope_key(parent: str, owner: str, index: int) -> str:
    return f"{parent}/{owner}[{index}]"


class Instance:
    def __init__(self, instance_id: str) -> None:
        self.id = instance_id
        self.process_id = ""
        self.version = 0
        self.definition_hash = ""
        self.status = InstanceStatus.RUNNING
        self.inputs: JSONObject = {}
        self.vars: JSONObject = {}
        self.outputs: JSONObject | None = None
        self.error: str | None = None
        self.parent_instance_id: str | None = None
        self.workspace_id = "default"
        self.parent_task_id: str | None = None
        self.idempotency_key: str | None = None
        self.depth = 0
        self.created_at = 0.0
        self.updated_at = 0.0
        self.seq = 0
        self.tasks: dict[str, Task] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.scopes: dict[str, Scope] = {ROOT_SCOPE: Scope(ROOT_SCOPE, ROOT_SCOPE, "", 0, ())}
        self.pending: list[tuple[int, ev.Event]] = []
        # scope -> node -> {output, error, status}, kept current on every task change so a
        # template context costs the visible outputs, not a scan of every task
        self._results: dict[str, dict[str, JSON]] = {}
        self.new_tasks: set[str] = set()
        self.dirty_tasks: set[str] = set()

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def replay(cls, instance_id: str, events: Iterable[ev.Event]) -> Instance:
        inst = cls(instance_id)
        inst.catch_up(events)
        return inst

    def catch_up(self, events: Iterable[ev.Event]) -> None:
        """Apply already-journaled events (no new rows are written for them)."""
        for e in events:
            self._apply(e)
            self.seq += 1
        self.new_tasks.clear()
        self.dirty_tasks.clear()

    def take_pending(self) -> list[tuple[int, ev.Event]]:
        """Events recorded since the last commit, with their journal sequence numbers."""
        out, self.pending = self.pending, []
        return out

    # ---- queries -------------------------------------------------------------------------
    def task_at(self, scope: str, node_id: str) -> Task | None:
        tid = self.by_key.get((scope, node_id))
        return None if tid is None else self.tasks[tid]

    def task(self, task_id: str) -> Task:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise Conflict(f"task {task_id} does not belong to instance {self.id}") from None

    def child_scopes(self, scope: str, owner: str) -> list[Scope]:
        prefix = f"{scope}/{owner}["
        return sorted(
            (s for s in self.scopes.values() if s.key.startswith(prefix) and s.parent == scope),
            key=lambda s: s.index,
        )

    def active_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.active]

    def node_outputs(self, scope: str) -> dict[str, JSON]:
        """Outputs visible from ``scope``: its own nodes, then enclosing scopes (inner wins)."""
        chain = []
        key = scope
        while True:
            chain.append(key)
            if key == ROOT_SCOPE:
                break
            key = self.scopes[key].parent
        merged: dict[str, JSON] = {}
        for k in reversed(chain):
            merged.update(self._results.get(k, {}))
        return merged

    # ---- commands ------------------------------------------------------------------------
    def _record(self, event: ev.Event) -> None:
        self._apply(event)
        self.seq += 1
        self.pending.append((self.seq, event))

    def record(self, stamp: Stamp, event: ev.Event) -> None:
        """Record ``event``, a draft without its envelope (``Event.stamped`` fills it in from
        this instance and ``stamp``); transitions are checked on apply."""
        self._record(event.stamped(self.id, stamp.new_id(), stamp.now))

    # ---- applying ------------------------------------------------------------------------
    def _apply(self, e: ev.Event) -> None:
        handler = _APPLY[type(e)]
        handler(self, e)
        self.updated_at = e.occurred_at

    def _touch(self, task: Task, at: float) -> None:
        task.updated_at = at
        self.dirty_tasks.add(task.id)
        results = self._results.setdefault(task.scope, {})
        if task.status is TaskStatus.COMPLETED or (
            task.status is TaskStatus.FAILED and task.handled
        ):
            results[task.node_id] = {
                "output": task.output,
                "error": task.error,
                "status": task.status.value,
            }
        else:
            results.pop(task.node_id, None)

    def _new_task(
        self, e: ev.TaskScheduled | ev.TaskWaiting | ev.TaskSkipped, status: TaskStatus
    ) -> Task:
        key = (e.scope, e.node_id)
        if key in self.by_key:
            raise Conflict(f"node {e.node_id!r} already has a task in scope {e.scope!r}")
        task = Task(
            id=e.task_id,
            scope=e.scope,
            node_id=e.node_id,
            node_type=e.node_type,
            status=status,
            created_at=e.occurred_at,
            updated_at=e.occurred_at,
        )
        self.tasks[task.id] = task
        self.by_key[key] = task.id
        self.new_tasks.add(task.id)
        return task


_E = TypeVar("_E", bound=ev.Event)
_Apply = Callable[[Instance, ev.Event], None]
_APPLY: dict[type[ev.Event], _Apply] = {}


def _applies(
    cls: type[_E],
) -> Callable[[Callable[[Instance, _E], None]], Callable[[Instance, _E], None]]:
    """Register how an event of type ``cls`` changes an instance (its type checked against
    ``cls``: the table holds each function under the one event type it accepts)."""

    def register(fn: Callable[[Instance, _E], None]) -> Callable[[Instance, _E], None]:
        _APPLY[cls] = cast(_Apply, fn)
        return fn

    return register


@_applies(ev.InstanceStarted)
def _started(inst: Instance, e: ev.InstanceStarted) -> None:
    inst.process_id = e.process_id
    inst.version = e.version
    inst.definition_hash = e.definition_hash
    inst.inputs = dict(e.inputs)
    inst.vars = dict(e.vars)
    inst.parent_instance_id = e.parent_instance_id
    inst.parent_task_id = e.parent_task_id
    inst.idempotency_key = e.idempotency_key
    inst.workspace_id = e.workspace_id
    inst.depth = e.depth
    inst.created_at = e.occurred_at


@_applies(ev.InstanceCompleted)
def _completed(inst: Instance, e: ev.InstanceCompleted) -> None:
    inst.status = transition_instance(inst.status, InstanceStatus.COMPLETED)
    inst.outputs = dict(e.outputs)


@_applies(ev.InstanceFailed)
def _failed(inst: Instance, e: ev.InstanceFailed) -> None:
    inst.status = transition_instance(inst.status, InstanceStatus.FAILED)
    inst.error = e.error


@_applies(ev.InstanceCancelled)
def _cancelled(inst: Instance, e: ev.InstanceCancelled) -> None:
    inst.status = transition_instance(inst.status, InstanceStatus.CANCELLED)
    inst.error = e.reason


@_applies(ev.InstanceResumed)
def _resumed(inst: Instance, e: ev.InstanceResumed) -> None:
    inst.status = transition_instance(inst.status, InstanceStatus.RUNNING)
    inst.error = None


@_applies(ev.TaskScheduled)
def _scheduled(inst: Instance, e: ev.TaskScheduled) -> None:
    existing = inst.by_key.get((e.scope, e.node_id))
    task = inst._new_task(e, TaskStatus.SCHEDULED) if existing is None else inst.tasks[existing]
    task.attempt = e.attempt
    task.available_at = e.available_at
    if e.leased_to is not None:
        _move(task, TaskStatus.RUNNING)
        task.leased_to, task.lease_token = e.leased_to, e.lease_token
        task.lease_expires_at = e.lease_expires_at
        task.lease_changed = True
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskWaiting)
def _waiting(inst: Instance, e: ev.TaskWaiting) -> None:
    existing = inst.by_key.get((e.scope, e.node_id))
    if existing is None:
        task = inst._new_task(e, TaskStatus.WAITING)
    else:
        task = inst.tasks[existing]
        _move(task, TaskStatus.WAITING)  # waiting already: it records more detail
    task.detail = {**task.detail, **e.detail}
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskLeased)
def _leased(inst: Instance, e: ev.TaskLeased) -> None:
    task = inst.tasks[e.task_id]
    _move(task, TaskStatus.RUNNING)  # running already: the lease is taken again
    task.leased_to, task.lease_token, task.lease_expires_at = (
        e.leased_to,
        e.lease_token,
        e.lease_expires_at,
    )
    task.lease_changed = True
    inst._touch(task, e.occurred_at)


def _move(task: Task, status: TaskStatus) -> None:
    """Change the task's status, if this event changes it: a table has no self-loops, and
    journals recorded when it had some (scheduled, running, waiting) still replay."""
    if task.status is not status:
        task.status = transition_task(task.status, status)


def _clear_lease(task: Task) -> None:
    if task.leased_to is not None or task.lease_token is not None:
        task.leased_to = task.lease_token = None
        task.lease_expires_at = None
    task.lease_changed = True


@_applies(ev.TaskCompleted)
def _task_completed(inst: Instance, e: ev.TaskCompleted) -> None:
    task = inst.tasks[e.task_id]
    task.status = transition_task(task.status, TaskStatus.COMPLETED)
    task.output, task.ports, task.error, task.attempt = e.output, tuple(e.ports), e.error, e.attempt
    task.usage = dict(e.usage)
    _clear_lease(task)
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskStepRecorded)
def _step_recorded(inst: Instance, e: ev.TaskStepRecorded) -> None:
    task = inst.tasks[e.task_id]
    task.steps.append(dict(e.step))


@_applies(ev.TaskFailed)
def _task_failed(inst: Instance, e: ev.TaskFailed) -> None:
    task = inst.tasks[e.task_id]
    task.status = transition_task(task.status, TaskStatus.FAILED)
    task.error, task.handled, task.attempt = e.error, e.handled, e.attempt
    task.ports = ("error",) if e.handled else ()
    _clear_lease(task)
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskRetryScheduled)
def _retry_scheduled(inst: Instance, e: ev.TaskRetryScheduled) -> None:
    task = inst.tasks[e.task_id]
    _move(task, TaskStatus.SCHEDULED)
    task.attempt, task.error, task.available_at = e.attempt, e.error, e.available_at
    task.steps = []  # a new attempt starts its loop afresh; a crash re-run keeps the steps
    _clear_lease(task)
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskRequeued)
def _requeued(inst: Instance, e: ev.TaskRequeued) -> None:
    task = inst.tasks[e.task_id]
    _move(task, TaskStatus.SCHEDULED)
    counter = "requeues" if e.charged else "releases"
    task.detail = {**task.detail, counter: _int(task.detail.get(counter)) + 1}
    _clear_lease(task)
    inst._touch(task, e.occurred_at)


def _int(value: JSON) -> int:
    return value if isinstance(value, int) else 0


@_applies(ev.TaskSkipped)
def _skipped(inst: Instance, e: ev.TaskSkipped) -> None:
    task = inst._new_task(e, TaskStatus.SKIPPED)
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskCancelled)
def _task_cancelled(inst: Instance, e: ev.TaskCancelled) -> None:
    task = inst.tasks[e.task_id]
    task.status = transition_task(task.status, TaskStatus.CANCELLED)
    task.error = e.reason
    _clear_lease(task)
    inst._touch(task, e.occurred_at)


@_applies(ev.TaskReset)
def _reset(inst: Instance, e: ev.TaskReset) -> None:
    task = inst.tasks[e.task_id]
    task.status = transition_task(task.status, TaskStatus.SCHEDULED)
    task.attempt, task.available_at, task.error, task.handled = (
        e.attempt,
        e.available_at,
        None,
        False,
    )
    task.ports, task.output, task.detail, task.steps = (), None, {}, []
    _clear_lease(task)
    inst._touch(task, e.occurred_at)


@_applies(ev.ScopeOpened)
def _scope_opened(inst: Instance, e: ev.ScopeOpened) -> None:
    parent = inst.scopes[e.parent_scope]
    inst.scopes[e.scope] = Scope(
        key=e.scope,
        parent=e.parent_scope,
        owner=e.owner_node,
        index=e.index,
        path=(*parent.path, e.owner_node),
        item=e.item,
    )


@_applies(ev.ScopeClosed)
def _scope_closed(inst: Instance, e: ev.ScopeClosed) -> None:
    scope = inst.scopes[e.scope]
    scope.status, scope.output, scope.stop, scope.error = e.status, e.output, e.stop, e.error


@_applies(ev.ChildStarted)
def _child_started(inst: Instance, e: ev.ChildStarted) -> None:
    task = inst.tasks[e.task_id]
    task.detail = {**task.detail, "child_instance_id": e.child_instance_id}
    inst._touch(task, e.occurred_at)
