"""The store of external-worker assignments: shared by every process of a deployment, so a
worker may poll any API process and report to any, while the task waits on the engine process
that dispatched it (``application.external``).

Every change of status is one conditional update guarded by the transition table
(``domain.assignment``): two polls never take the same assignment, and a result is accepted
once. Adapters: ``infrastructure/sql/assignments.py`` and ``infrastructure/assignments_memory.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cadenza.domain.assignment import Assignment, AssignmentState
from cadenza.domain.json import JSON


class AssignmentStore(Protocol):
    async def add(
        self, assignment: Assignment, workspace_id: str, now: float, deadline: float
    ) -> bool:
        """Queue an ``open`` assignment; ``deadline`` is when its dispatcher stops waiting.
        False (nothing written) when an assignment with its id exists already."""
        ...

    async def latest(
        self, task_id: str, idempotency_key: str
    ) -> tuple[str, AssignmentState] | None:
        """The newest assignment of this task attempt (``idempotency_key``) with its state: a
        task run again after its process died finds the result already accepted, or the
        assignment a worker still works on; None if there is none."""
        ...

    async def take(
        self, agent_id: str, capabilities: frozenset[str], now: float
    ) -> Assignment | None:
        """Take the oldest open assignment of ``agent_id`` whose ``requires`` are within
        ``capabilities`` (open -> taken, atomically); None if there is none."""
        ...

    async def put_back(self, assignment_id: str, now: float) -> None:
        """A poll that took it was cancelled before handing it out: open again."""
        ...

    async def finish(
        self,
        assignment_id: str,
        output: JSON,
        error: str | None,
        retryable: bool,
        now: float,
    ) -> bool:
        """Accept the result of a taken assignment (``done``; ``failed`` when ``error`` is
        given). False when it is not taken: unknown, already finished or abandoned."""
        ...

    async def abandon(self, assignment_id: str, now: float) -> bool:
        """Nobody waits for its result any more (open or taken -> abandoned); False if it
        had already finished."""
        ...

    async def states(self, assignment_ids: Sequence[str]) -> dict[str, AssignmentState]:
        """The states of the assignments that exist among ``assignment_ids``."""
        ...

    async def expire(self, before: float, purge_before: float) -> int:
        """Abandon unfinished assignments whose deadline is before ``before`` (their
        dispatcher is gone); delete finished ones last changed before ``purge_before``.
        Returns how many were abandoned."""
        ...

    async def unfinished(self, limit: int) -> list[Assignment]:
        """Open and taken assignments, oldest first (monitoring)."""
        ...
