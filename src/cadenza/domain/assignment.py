"""An external worker's assignment: one task attempt handed to a ``worker`` agent, and its
lifecycle as a transition table.

``open`` (queued) -> ``taken`` (a worker polled it) -> ``done`` / ``failed`` (its one accepted
result); ``open`` or ``taken`` -> ``abandoned`` (the task stopped waiting: timeout, cancel, or
its dispatcher is gone). A poll cancelled after taking one puts it back (``taken`` ->
``open``). The finished statuses have no way out: a second report is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cadenza.domain.json import JSON


@dataclass(frozen=True)
class Assignment:
    """One task attempt handed to a worker; ``idempotency_key`` lets it deduplicate repeats."""

    id: str
    agent_id: str
    instance_id: str
    task_id: str
    node_id: str
    requires: tuple[str, ...]
    input: JSON
    instructions: str | None
    idempotency_key: str
    timeout_s: float


class AssignmentStatus(StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    DONE = "done"
    FAILED = "failed"
    ABANDONED = "abandoned"


_S = AssignmentStatus
ASSIGNMENT_TRANSITIONS: Mapping[AssignmentStatus, frozenset[AssignmentStatus]] = {
    _S.OPEN: frozenset({_S.TAKEN, _S.ABANDONED}),
    _S.TAKEN: frozenset({_S.OPEN, _S.DONE, _S.FAILED, _S.ABANDONED}),
    _S.DONE: frozenset(),
    _S.FAILED: frozenset(),
    _S.ABANDONED: frozenset(),
}
UNFINISHED_ASSIGNMENT = frozenset({_S.OPEN, _S.TAKEN})


def sources(target: AssignmentStatus) -> frozenset[AssignmentStatus]:
    """The statuses an assignment may move to ``target`` from (a conditional update's guard)."""
    return frozenset(s for s, targets in ASSIGNMENT_TRANSITIONS.items() if target in targets)


@dataclass(frozen=True)
class AssignmentState:
    """Where an assignment stands, with its result once it has one."""

    agent_id: str
    status: AssignmentStatus
    output: JSON = None
    error: str | None = None
    retryable: bool = True

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED_ASSIGNMENT
