"""Lifecycles of instances and tasks as transition tables.

A table lists changes of status only: it has no self-loops. An event that leaves a status as
it is (a lease taken again, a waiting task given more detail) does not call ``transition_*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from cadenza.domain.errors import InvalidTransition


class InstanceStatus(StrEnum):
    """The status of a process instance."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    """The status of a task; also the status an event leaves it in."""

    SCHEDULED = "scheduled"  # queued for a worker (maybe not before available_at)
    RUNNING = "running"  # leased to a worker
    WAITING = "waiting"  # control node waiting on a timer, signal, child or body
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ScopeStatus(StrEnum):
    """A map item's or loop iteration's body scope (the root scope stays active)."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


INSTANCE_TRANSITIONS: Mapping[InstanceStatus, frozenset[InstanceStatus]] = {
    InstanceStatus.RUNNING: frozenset(
        {InstanceStatus.COMPLETED, InstanceStatus.FAILED, InstanceStatus.CANCELLED}
    ),
    InstanceStatus.FAILED: frozenset({InstanceStatus.RUNNING, InstanceStatus.CANCELLED}),
    InstanceStatus.COMPLETED: frozenset(),
    InstanceStatus.CANCELLED: frozenset(),
}

_T = TaskStatus
TASK_TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    # ... and WAITING: a control node's task reset for a retry from failure waits again
    _T.SCHEDULED: frozenset({_T.RUNNING, _T.WAITING, _T.COMPLETED, _T.FAILED, _T.CANCELLED}),
    _T.RUNNING: frozenset({_T.SCHEDULED, _T.COMPLETED, _T.FAILED, _T.CANCELLED}),
    _T.WAITING: frozenset({_T.COMPLETED, _T.FAILED, _T.CANCELLED}),
    _T.FAILED: frozenset({_T.SCHEDULED, _T.WAITING}),
    _T.CANCELLED: frozenset({_T.SCHEDULED, _T.WAITING}),
    _T.COMPLETED: frozenset(),
    _T.SKIPPED: frozenset(),
}

# a task is created scheduled (worker and inline nodes), waiting (control nodes) or skipped
INITIAL_TASK = frozenset({_T.SCHEDULED, _T.WAITING, _T.SKIPPED})
TERMINAL_TASK = frozenset({_T.COMPLETED, _T.FAILED, _T.SKIPPED, _T.CANCELLED})
ACTIVE_TASK = frozenset({_T.SCHEDULED, _T.RUNNING, _T.WAITING})
TERMINAL_INSTANCE = frozenset({InstanceStatus.COMPLETED, InstanceStatus.CANCELLED})


def transition_instance(current: InstanceStatus, new: InstanceStatus) -> InstanceStatus:
    if new not in INSTANCE_TRANSITIONS[current]:
        raise InvalidTransition(f"instance cannot go from {current} to {new}")
    return new


def transition_task(current: TaskStatus, new: TaskStatus) -> TaskStatus:
    if new not in TASK_TRANSITIONS[current]:
        raise InvalidTransition(f"task cannot go from {current} to {new}")
    return new
