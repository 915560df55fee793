"""``SqlAgentRepository``: agent definitions and statuses in the ``agents`` table.

Outstanding counts and response times are not stored: they belong to the process making the
calls (see ``application.agents``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cadenza.application.agent_definitions import conflict
from cadenza.application.ports import Clock
from cadenza.domain.agent import Agent, AgentStatus, AgentType
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.tables import agents


def _values(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "type": str(agent.type),
        "capabilities": sorted(agent.capabilities),
        "config": agent.config,
        "capacity": agent.capacity,
        "weight": agent.weight,
        "status": str(agent.status),
        "last_seen": agent.last_seen,
        "workspace_id": agent.workspace_id,
    }


def _agent(r: Any) -> Agent:
    return Agent(
        id=r.id,
        name=r.name,
        type=AgentType(r.type),
        capabilities=frozenset(r.capabilities),
        config=r.config,
        capacity=int(r.capacity),
        weight=int(r.weight),
        status=AgentStatus(r.status),
        last_seen=r.last_seen,
        workspace_id=r.workspace_id,
    )


class SqlAgentRepository:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        # reads take no write lock on SQLite (a deferred BEGIN over the WAL snapshot): every
        # external worker's poll reads its agent, and a poll may be cancelled at any moment
        self._reader = engine.execution_options(**{READ_ONLY: True})
        self._clock = clock

    async def add(self, agent: Agent) -> None:
        now = self._clock.now()
        stmt = agents.insert().values(id=agent.id, created_at=now, updated_at=now, **_values(agent))
        await self._write(stmt, agent)

    async def update(self, agent: Agent) -> None:
        stmt = (
            agents.update()
            .where(agents.c.id == agent.id)
            .values(updated_at=self._clock.now(), **_values(agent))
        )
        await self._write(stmt, agent)

    async def remove(self, agent_id: str) -> None:
        async with self._engine.begin() as conn:
            if (await conn.execute(agents.delete().where(agents.c.id == agent_id))).rowcount:
                await write_pending(conn)  # the audit row commits with the change

    async def get(self, agent_id: str) -> Agent | None:
        async with self._reader.connect() as conn:
            row = (await conn.execute(sa.select(agents).where(agents.c.id == agent_id))).first()
        return None if row is None else _agent(row)

    async def list(self) -> list[Agent]:
        async with self._reader.connect() as conn:
            result = await conn.execute(sa.select(agents).order_by(agents.c.name))
            return [_agent(r) for r in result]

    async def _write(self, stmt: sa.Executable, agent: Agent) -> None:
        """Write, unless the name is taken (``application.agents.name_taken``): the unique
        indexes cover names within a workspace and among shared agents; a workspace agent
        named like a shared one is checked here, in the same transaction. Shielded: a poll
        cancelled by its client must not cut the transaction between BEGIN IMMEDIATE and its
        end, which on SQLite could leave the write lock with a connection nobody closes."""
        await shielded(self._engine, self._write_now(stmt, agent))

    async def _write_now(self, stmt: sa.Executable, agent: Agent) -> None:
        try:
            async with self._engine.begin() as conn:
                if agent.workspace_id is not None and await self._shared_named(conn, agent):
                    raise conflict(agent)
                if (await conn.execute(stmt)).rowcount:
                    await write_pending(conn, agent.id)  # the audit row commits with it
        except IntegrityError as exc:  # the only constraints besides the key are on names
            raise conflict(agent) from exc

    @staticmethod
    async def _shared_named(conn: AsyncConnection, agent: Agent) -> bool:
        c = agents.c
        stmt = sa.select(c.id).where(c.name == agent.name, c.workspace_id.is_(None)).limit(1)
        return (await conn.execute(stmt)).first() is not None
