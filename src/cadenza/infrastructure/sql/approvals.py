"""``SqlToolApprovals``: approved MCP tool definitions in ``tool_approvals`` (``ToolApprovals``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.ports_approvals import ToolApproval
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.tables import tool_approvals

_T = tool_approvals
_C = tool_approvals.c


class SqlToolApprovals:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def approve(self, approval: ToolApproval) -> None:
        a = approval
        where = (_C.server == a.server, _C.tool == a.tool, _C.hash == a.hash)
        changes = {"approved_by": a.approved_by, "approved_at": a.approved_at}
        for _ in range(2):  # update, else insert; a concurrent insert makes the update win
            async with self._engine.begin() as conn:
                if (await conn.execute(_T.update().where(*where).values(**changes))).rowcount:
                    await write_pending(conn)  # the audit row commits with the approval
                    return
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        _T.insert().values(server=a.server, tool=a.tool, hash=a.hash, **changes)
                    )
                    await write_pending(conn)
                return
            except IntegrityError:
                continue

    async def approvals(self, server: str) -> list[ToolApproval]:
        stmt = sa.select(_T).where(_C.server == server).order_by(_C.approved_at, _C.tool)
        async with self._reader.connect() as conn:
            return [
                ToolApproval(r.server, r.tool, r.hash, r.approved_by, float(r.approved_at))
                for r in await conn.execute(stmt)
            ]
