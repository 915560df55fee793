"""How each journal event changes an instance: the table ``Instance`` replays events through.

One function per event type, registered with ``_applies``; each checks the status change it
makes against the transition tables (``status``), so a journal that breaks them does not
replay. ``Instance._apply`` looks the function up in ``APPLY`` by the event's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from cadenza.domain import events as ev
from cadenza.domain.errors import Conflict
from cadenza.domain.json import JSON
from cadenza.domain.status import (
    InstanceStatus,
    TaskStatus,
    transition_instance,
    transition_task,
)
from cadenza.domain.tasks import Scope, Task

if TYPE_CHECKING:
    from cadenza.domain.instance import Instance

_E = TypeVar("_E", bound=ev.Event)
_Apply = Callable[["Instance", ev.Event], None]  # a string: Instance is imported for types only
APPLY: dict[type[ev.Event], _Apply] = {}


def _applies(
    cls: type[_E],
) -> Callable[[Callable[[Instance, _E], None]], Callable[[Instance, _E], None]]:
    """Register how an event of type ``cls`` changes an instance (its type checked against
    ``cls``: the table holds each function under the one event type it accepts)."""

    def register(fn: Callable[[Instance, _E], None]) -> Callable[[Instance, _E], None]:
        APPLY[cls] = cast(_Apply, fn)
        return fn

    return register


def _touch(inst: Instance, task: Task, at: float) -> None:
    """After ``task`` changed: its time, the rows to write, and what its scope shows."""
    task.updated_at = at
    inst.dirty_tasks.add(task.id)
    results = inst.results.setdefault(task.scope, {})
    if task.status is TaskStatus.COMPLETED or (task.status is TaskStatus.FAILED and task.handled):
        results[task.node_id] = {
            "output": task.output,
            "error": task.error,
            "status": task.status.value,
        }
    else:
        results.pop(task.node_id, None)


def _new_task(
    inst: Instance, e: ev.TaskScheduled | ev.TaskWaiting | ev.TaskSkipped, status: TaskStatus
) -> Task:
    key = (e.scope, e.node_id)
    if key in inst.by_key:
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
    inst.tasks[task.id] = task
    inst.by_key[key] = task.id
    inst.new_tasks.add(task.id)
    return task


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
    task = _new_task(inst, e, TaskStatus.SCHEDULED) if existing is None else inst.tasks[existing]
    task.attempt = e.attempt
    task.available_at = e.available_at
    if e.leased_to is not None:
        _move(task, TaskStatus.RUNNING)
        task.leased_to, task.lease_token = e.leased_to, e.lease_token
        task.lease_expires_at = e.lease_expires_at
        task.lease_changed = True
    _touch(inst, task, e.occurred_at)


@_applies(ev.TaskWaiting)
def _waiting(inst: Instance, e: ev.TaskWaiting) -> None:
    existing = inst.by_key.get((e.scope, e.node_id))
    if existing is None:
        task = _new_task(inst, e, TaskStatus.WAITING)
    else:
        task = inst.tasks[existing]
        _move(task, TaskStatus.WAITING)  # waiting already: it records more detail
    task.detail = {**task.detail, **e.detail}
    _touch(inst, task, e.occurred_at)


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
    _touch(inst, task, e.occurred_at)


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
    _touch(inst, task, e.occurred_at)


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
    _touch(inst, task, e.occurred_at)


@_applies(ev.TaskRetryScheduled)
def _retry_scheduled(inst: Instance, e: ev.TaskRetryScheduled) -> None:
    task = inst.tasks[e.task_id]
    _move(task, TaskStatus.SCHEDULED)
    task.attempt, task.error, task.available_at = e.attempt, e.error, e.available_at
    task.steps = []  # a new attempt starts its loop afresh; a crash re-run keeps the steps
    # ... and its own count of worker deaths (task_max_crashes is per attempt)
    task.detail = {k: v for k, v in task.detail.items() if k != "crashes"}
    _clear_lease(task)
    _touch(inst, task, e.occurred_at)


@_applies(ev.TaskRequeued)
def _requeued(inst: Instance, e: ev.TaskRequeued) -> None:
    task = inst.tasks[e.task_id]
    _move(task, TaskStatus.SCHEDULED)
    counter = "requeues" if e.charged else "crashes" if e.crashed else "releases"
    task.detail = {**task.detail, counter: _int(task.detail.get(counter)) + 1}
    _clear_lease(task)
    _touch(inst, task, e.occurred_at)


def _int(value: JSON) -> int:
    return value if isinstance(value, int) else 0


@_applies(ev.TaskSkipped)
def _skipped(inst: Instance, e: ev.TaskSkipped) -> None:
    task = _new_task(inst, e, TaskStatus.SKIPPED)
    _touch(inst, task, e.occurred_at)


@_applies(ev.TaskCancelled)
def _task_cancelled(inst: Instance, e: ev.TaskCancelled) -> None:
    task = inst.tasks[e.task_id]
    task.status = transition_task(task.status, TaskStatus.CANCELLED)
    task.error = e.reason
    _clear_lease(task)
    _touch(inst, task, e.occurred_at)


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
    _touch(inst, task, e.occurred_at)


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
    _touch(inst, task, e.occurred_at)
