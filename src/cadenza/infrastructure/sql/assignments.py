"""``SqlAssignments``: external-worker assignments in the ``assignments`` table, shared by every
process on the database (the ``AssignmentStore``).

Each change of status is one ``UPDATE ... WHERE id = :id AND status IN (...)``, the statuses
the transition table allows to move from: of two polls taking the same row, or two reports of
one result, exactly one updates a row. Taking reads the oldest open rows of the agent first
(at most ``TAKE_SCAN``, filtered by capabilities here: a JSON subset test has no portable SQL)
and takes the first it wins. Writes are shielded from cancellation: a poll cancelled by its
client must not cut a SQLite transaction between ``BEGIN IMMEDIATE`` and its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.domain.assignment import (
    UNFINISHED_ASSIGNMENT,
    Assignment,
    AssignmentState,
    AssignmentStatus,
    sources,
)
from cadenza.domain.json import JSON
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.tables import assignments

TAKE_SCAN = 100  # open assignments of one agent a poll looks at, oldest first
_C = assignments.c
_FINISHED = [str(s) for s in AssignmentStatus if s not in UNFINISHED_ASSIGNMENT]


def _assignment(r: Any) -> Assignment:
    return Assignment(
        id=r.id,
        agent_id=r.agent_id,
        instance_id=r.instance_id,
        task_id=r.task_id,
        node_id=r.node_id,
        requires=tuple(r.requires),
        input=r.input,
        instructions=r.instructions,
        idempotency_key=r.idempotency_key,
        timeout_s=float(r.timeout_s),
    )


def _state(r: Any) -> AssignmentState:
    return AssignmentState(
        r.agent_id, AssignmentStatus(r.status), r.output, r.error, bool(r.retryable)
    )


class SqlAssignments:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # reads take no write lock on SQLite (every waiting poll and dispatch reads often)
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def add(
        self, assignment: Assignment, workspace_id: str, now: float, deadline: float
    ) -> bool:
        a = assignment
        stmt = assignments.insert().values(
            id=a.id,
            workspace_id=workspace_id,
            agent_id=a.agent_id,
            instance_id=a.instance_id,
            task_id=a.task_id,
            node_id=a.node_id,
            requires=list(a.requires),
            input=a.input,
            instructions=a.instructions,
            idempotency_key=a.idempotency_key,
            timeout_s=a.timeout_s,
            deadline=deadline,
            status=str(AssignmentStatus.OPEN),
            retryable=True,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._write(stmt)
        except sa.exc.IntegrityError:  # the id exists: another dispatcher queued it first
            return False
        return True

    async def latest(
        self, task_id: str, idempotency_key: str
    ) -> tuple[str, AssignmentState] | None:
        stmt = (
            sa.select(_C.id, _C.agent_id, _C.status, _C.output, _C.error, _C.retryable)
            .where(_C.task_id == task_id, _C.idempotency_key == idempotency_key)
            .order_by(_C.created_at.desc(), _C.id.desc())
            .limit(1)
        )
        async with self._reader.connect() as conn:
            r = (await conn.execute(stmt)).first()
        return None if r is None else (r.id, _state(r))

    async def take(
        self, agent_id: str, capabilities: frozenset[str], now: float
    ) -> Assignment | None:
        stmt = (
            sa.select(assignments)
            .where(_C.agent_id == agent_id, _C.status == str(AssignmentStatus.OPEN))
            .order_by(_C.created_at, _C.id)
            .limit(TAKE_SCAN)
        )
        async with self._reader.connect() as conn:
            candidates = (await conn.execute(stmt)).all()
        for r in candidates:
            if capabilities.issuperset(r.requires) and await self._move(
                r.id, AssignmentStatus.TAKEN, now
            ):
                return _assignment(r)
        return None

    async def put_back(self, assignment_id: str, now: float) -> None:
        await self._move(assignment_id, AssignmentStatus.OPEN, now)

    async def finish(
        self, assignment_id: str, output: JSON, error: str | None, retryable: bool, now: float
    ) -> bool:
        to = AssignmentStatus.DONE if error is None else AssignmentStatus.FAILED
        return await self._move(
            assignment_id, to, now, output=output, error=error, retryable=retryable
        )

    async def abandon(self, assignment_id: str, now: float) -> bool:
        return await self._move(assignment_id, AssignmentStatus.ABANDONED, now)

    async def states(self, assignment_ids: Sequence[str]) -> dict[str, AssignmentState]:
        if not assignment_ids:
            return {}
        stmt = sa.select(_C.id, _C.agent_id, _C.status, _C.output, _C.error, _C.retryable).where(
            _C.id.in_(list(assignment_ids))
        )
        async with self._reader.connect() as conn:
            return {r.id: _state(r) for r in await conn.execute(stmt)}

    async def expire(self, before: float, purge_before: float) -> int:
        late = (
            assignments.update()
            .where(
                _C.status.in_([str(s) for s in sources(AssignmentStatus.ABANDONED)]),
                _C.deadline < before,
            )
            .values(status=str(AssignmentStatus.ABANDONED), updated_at=before)
        )
        purge = assignments.delete().where(_C.status.in_(_FINISHED), _C.updated_at < purge_before)
        count = await self._write(late)
        await self._write(purge)
        return count

    async def unfinished(self, limit: int) -> list[Assignment]:
        stmt = (
            sa.select(assignments)
            .where(_C.status.in_([str(s) for s in UNFINISHED_ASSIGNMENT]))
            .order_by(_C.created_at, _C.id)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            return [_assignment(r) for r in await conn.execute(stmt)]

    async def _move(
        self, assignment_id: str, to: AssignmentStatus, now: float, **values: Any
    ) -> bool:
        stmt = (
            assignments.update()
            .where(_C.id == assignment_id, _C.status.in_([str(s) for s in sources(to)]))
            .values(status=str(to), updated_at=now, **values)
        )
        return await self._write(stmt) == 1

    async def _write(self, stmt: sa.Executable) -> int:
        return await shielded(self._engine, self._write_now(stmt))

    async def _write_now(self, stmt: sa.Executable) -> int:
        async with self._engine.begin() as conn:
            return int((await conn.execute(stmt)).rowcount or 0)
