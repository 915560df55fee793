"""``MemoryAssignments``: the in-process ``AssignmentStore`` (``memory://``, tests) and the
reference the SQL one is compared with."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cadenza.domain.assignment import (
    UNFINISHED_ASSIGNMENT,
    Assignment,
    AssignmentState,
    AssignmentStatus,
    sources,
)
from cadenza.domain.json import JSON


@dataclass(frozen=True)
class _Row:
    assignment: Assignment
    state: AssignmentState
    deadline: float
    updated_at: float
    order: tuple[float, str]  # (created_at, id): the SQL store's order


class MemoryAssignments:
    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    async def add(
        self, assignment: Assignment, workspace_id: str, now: float, deadline: float
    ) -> bool:
        if assignment.id in self._rows:
            return False
        state = AssignmentState(assignment.agent_id, AssignmentStatus.OPEN)
        self._rows[assignment.id] = _Row(
            copy.deepcopy(assignment), state, deadline, now, (now, assignment.id)
        )
        return True

    async def latest(
        self, task_id: str, idempotency_key: str
    ) -> tuple[str, AssignmentState] | None:
        rows = [
            r
            for r in self._rows.values()
            if r.assignment.task_id == task_id and r.assignment.idempotency_key == idempotency_key
        ]
        if not rows:
            return None
        row = max(rows, key=lambda r: r.order)
        return row.assignment.id, copy.deepcopy(row.state)

    async def take(
        self, agent_id: str, capabilities: frozenset[str], now: float
    ) -> Assignment | None:
        for row in sorted(self._rows.values(), key=lambda r: r.order):
            a = row.assignment
            if (
                row.state.status is AssignmentStatus.OPEN
                and a.agent_id == agent_id
                and capabilities.issuperset(a.requires)
            ):
                self._move(a.id, AssignmentStatus.TAKEN, now)
                return copy.deepcopy(a)
        return None

    async def put_back(self, assignment_id: str, now: float) -> None:
        self._move(assignment_id, AssignmentStatus.OPEN, now)

    async def finish(
        self, assignment_id: str, output: JSON, error: str | None, retryable: bool, now: float
    ) -> bool:
        to = AssignmentStatus.DONE if error is None else AssignmentStatus.FAILED
        return self._move(
            assignment_id, to, now, output=copy.deepcopy(output), error=error, retryable=retryable
        )

    async def abandon(self, assignment_id: str, now: float) -> bool:
        return self._move(assignment_id, AssignmentStatus.ABANDONED, now)

    async def states(self, assignment_ids: Sequence[str]) -> dict[str, AssignmentState]:
        return {i: copy.deepcopy(self._rows[i].state) for i in assignment_ids if i in self._rows}

    async def expire(self, before: float, purge_before: float) -> int:
        late = [
            r.assignment.id
            for r in self._rows.values()
            if r.state.status in UNFINISHED_ASSIGNMENT and r.deadline < before
        ]
        for assignment_id in late:
            self._move(assignment_id, AssignmentStatus.ABANDONED, before)
        for row in list(self._rows.values()):
            if row.state.finished and row.updated_at < purge_before:
                del self._rows[row.assignment.id]
        return len(late)

    async def unfinished(self, limit: int) -> list[Assignment]:
        rows = sorted(self._rows.values(), key=lambda r: r.order)
        return [copy.deepcopy(r.assignment) for r in rows if not r.state.finished][:limit]

    def _move(
        self,
        assignment_id: str,
        to: AssignmentStatus,
        now: float,
        *,
        output: JSON = None,
        error: str | None = None,
        retryable: bool = True,
    ) -> bool:
        row = self._rows.get(assignment_id)
        if row is None or row.state.status not in sources(to):
            return False
        state = replace(row.state, status=to, output=output, error=error, retryable=retryable)
        self._rows[assignment_id] = replace(row, state=state, updated_at=now)
        return True
