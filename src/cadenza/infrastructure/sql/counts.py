"""The counts behind the system-wide gauges (``observability.gauges``), in one statement: three
indexed counts of rows active now (``ix_instances_status``, ``ix_tasks_queue``, the small
``agents`` table), whatever the size of the history; then the small ``agents`` table's
statuses and capabilities, for the healthy agents per capability."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.infrastructure.observability.gauges import (
    CountSource,
    SystemCounts,
    capability_counts,
)
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import agents, instances, tasks


def _count(table: sa.Table, status: str) -> sa.ScalarSelect[int]:
    return (
        sa.select(sa.func.count()).select_from(table).where(table.c.status == status)
    ).scalar_subquery()


def sql_counts(engine: AsyncEngine) -> CountSource:
    stmt = sa.select(
        _count(instances, "running"), _count(tasks, "scheduled"), _count(agents, "healthy")
    )
    by_capability = sa.select(agents.c.status, agents.c.capabilities)
    reader = engine.execution_options(**{READ_ONLY: True})

    async def counts() -> SystemCounts:
        async with reader.connect() as conn:
            row = (await conn.execute(stmt)).one()
            registered = (await conn.execute(by_capability)).all()
        capabilities = capability_counts((str(a[0]), list(a[1] or ())) for a in registered)
        return SystemCounts(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), capabilities)

    return counts
