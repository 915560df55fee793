"""Timer kinds: what a durable timer does when it fires (stored as the string value), and the
ids of the timers a task or an instance arms.

A timer's id is derived from its owner (a task's id and attempt, or an instance's id) and its
kind, so the batch that ends the owner can delete the owner's pending timers without reading
them first (the ``timers`` table has no index but ``fire_at``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class TimerKind(StrEnum):
    WAIT = "wait"  # a wait node's time came: it completes
    APPROVAL_TIMEOUT = "approval_timeout"  # nobody decided in time: the approval fails
    TASK_TIMEOUT = "task_timeout"  # a control node ran past its timeout: it fails
    INSTANCE_TIMEOUT = "instance_timeout"  # the instance ran past settings.timeout: it fails


# one letter per kind, outside 0-9a-f: a derived id never equals a random (hex) one
_CODES = {
    TimerKind.WAIT: "w",
    TimerKind.APPROVAL_TIMEOUT: "p",
    TimerKind.TASK_TIMEOUT: "t",
    TimerKind.INSTANCE_TIMEOUT: "i",
}

# the kinds of timer a node type arms for its own task (besides TASK_TIMEOUT, which any
# control node with a ``timeout`` arms)
NODE_TIMERS: Mapping[str, frozenset[TimerKind]] = {
    "wait": frozenset({TimerKind.WAIT}),
    "approval": frozenset({TimerKind.APPROVAL_TIMEOUT}),
}


def timer_id(owner_id: str, kind: TimerKind, attempt: int = 1) -> str:
    """The id of ``owner_id``'s timer of ``kind`` for that attempt (an id of 34 characters
    plus 2 to 6: the column holds 40, so up to attempt 0xfffff)."""
    return f"{owner_id}{_CODES[kind]}{attempt:x}"


def task_timer_kinds(
    node_type: str, timeout_s: float | None, control: bool
) -> frozenset[TimerKind]:
    """The kinds of timer a task of this node may have armed: a control node's ``timeout`` is
    a timer, a worker node's is kept by the worker (no row)."""
    kinds = NODE_TIMERS.get(node_type, _NONE)
    return kinds | {TimerKind.TASK_TIMEOUT} if control and timeout_s else kinds


_NONE: frozenset[TimerKind] = frozenset()
