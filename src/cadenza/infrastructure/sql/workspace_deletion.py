"""``SqlWorkspaceDeletion``: the ``WorkspaceDeletionStore`` port on SQLite, PostgreSQL and
MySQL/MariaDB (docs/workspaces.md).

What a workspace owns is read from the table metadata, so a table added tomorrow is covered
(``tests/unit/test_workspace_tables.py`` fails for a table with a ``workspace_id`` column this
module would miss):

- its instances, each with every row of its (``retention.instance_tables()``: events, tasks,
  timers, feed, outbox, assignments, ...), ``batch`` instances per transaction, finished ones
  only (the job cancels the others through the engine first) and never one under a legal hold;
- then, once no instance is left, every other table with a ``workspace_id`` column
  (definitions, agents, assignments, API keys, memberships, secrets, quotas and their
  counters, retention policies, legal holds, ...), ``batch`` rows of one table per transaction;
- last the ``workspaces`` row, with the ``workspace.deleted`` audit row in the same
  transaction. Tables marked ``info={"workspace_deletion": "keep"}`` (the audit log, retained
  separately) are never touched.

Every batch adds its counts to ``workspaces.deleted_rows`` in its own transaction, so the
totals survive a crash and a resumed job neither repeats nor loses a batch. Writes run
shielded (a cancelled job must not cut a transaction in half) and go through
``SqlStore.write`` (on SQLite: queued on the engine's lock, one short transaction each).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.audit_ports import AuditEntry
from cadenza.application.ports_api import ACTIVE, DELETING
from cadenza.application.ports_workspaces import DeletionProgress, DeletionRequest
from cadenza.domain.retention import FAILED, FINISHED
from cadenza.infrastructure.sql.audit import append_entry, write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.retention import instance_tables
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import api_keys, instances, legal_holds, metadata, workspaces

KEEP = "keep"  # ``Table.info["workspace_deletion"]``: the table outlives the workspace
_I = instances.c
_W = workspaces.c
_DONE = [s.value for s in (*FINISHED, *FAILED)]


def workspace_tables() -> list[sa.Table]:
    """Every table with a ``workspace_id`` column but ``instances`` (deleted with their rows,
    first) and those marked keep; dependents first."""
    return [
        t
        for t in reversed(metadata.sorted_tables)
        if "workspace_id" in t.c and t is not instances and t.info.get("workspace_deletion") != KEEP
    ]


def _mine(table: sa.Table, workspace_id: str) -> sa.ColumnElement[bool]:
    """The rows of ``table`` the workspace owns (directly, or through one of its instances)."""
    if "workspace_id" in table.c:
        return table.c.workspace_id == workspace_id
    owned = sa.select(_I.id).where(_I.workspace_id == workspace_id)
    return table.c.instance_id.in_(owned.scalar_subquery())


class SqlWorkspaceDeletion:
    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._reader = store.engine.execution_options(**{READ_ONLY: True})
        self._locks = store.is_postgres or store.is_mysql
        self.instance_tables = instance_tables()
        self.tables = workspace_tables()

    async def holds(self, workspace_id: str) -> list[str]:
        stmt = (
            sa.select(legal_holds.c.instance_id)
            .where(legal_holds.c.workspace_id == workspace_id)
            .order_by(legal_holds.c.instance_id)
        )
        async with self._reader.connect() as conn:
            return [str(i) for i in (await conn.execute(stmt)).scalars()]

    async def mark(self, request: DeletionRequest) -> bool:
        return await shielded(self._store.engine, self._mark(request))

    async def _mark(self, request: DeletionRequest) -> bool:
        mark = (
            workspaces.update()
            .where(_W.id == request.workspace_id, _W.state == ACTIVE)
            .values(
                state=DELETING,
                deletion_requested_at=request.requested_at,
                deletion_requested_by=request.requested_by,
                deleted_rows={},
            )
        )
        async with self._store.write() as tx:
            if not (await tx.conn.execute(mark)).rowcount:
                return False
            keys = api_keys.update().where(api_keys.c.workspace_id == request.workspace_id)
            await tx.conn.execute(keys.values(revoked=True))  # a key starts nothing from now on
            await write_pending(tx.conn)
        return True

    async def deleting(self) -> list[DeletionRequest]:
        stmt = (
            sa.select(_W.id, _W.name, _W.deletion_requested_at, _W.deletion_requested_by)
            .where(_W.state == DELETING)
            .order_by(_W.deletion_requested_at, _W.id)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            DeletionRequest(r.id, r.name, float(r.deletion_requested_at or 0.0), str(r[3] or ""))
            for r in rows
        ]

    async def progress(self, workspace_id: str) -> DeletionProgress | None:
        async with self._reader.connect() as conn:
            row = (await conn.execute(sa.select(workspaces).where(_W.id == workspace_id))).first()
            if row is None:
                return None
            remaining = {
                "instances": await _count(conn, instances, _I.workspace_id == workspace_id)
            }
            for table in [*self.instance_tables, *self.tables]:
                n = await _count(conn, table, _mine(table, workspace_id))
                remaining[table.name] = max(n, remaining.get(table.name, 0))
        m = row._mapping
        return DeletionProgress(
            workspace_id,
            str(m["name"]),
            m["deletion_requested_at"],
            m["deletion_requested_by"],
            {t: n for t, n in remaining.items() if n},
            _counts(m["deleted_rows"]),
        )

    async def unfinished(self, workspace_id: str, limit: int) -> list[str]:
        stmt = (
            sa.select(_I.id)
            .where(_I.workspace_id == workspace_id, _I.status.not_in(_DONE))
            .order_by(_I.created_at)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            return [str(i) for i in (await conn.execute(stmt)).scalars()]

    async def purge(self, workspace_id: str, limit: int) -> Mapping[str, int]:
        if limit < 1:
            return {}
        return await shielded(self._store.engine, self._purge(workspace_id, limit))

    async def _purge(self, workspace_id: str, limit: int) -> dict[str, int]:
        async with self._store.write() as tx:
            conn = tx.conn
            so_far = await self._deleting_row(conn, workspace_id)
            if so_far is None:
                return {}
            counts = await self._instances(conn, workspace_id, limit)
            if not counts and not await _any(conn, instances, _I.workspace_id == workspace_id):
                counts = await self._other_rows(conn, workspace_id, limit)
            if counts:
                total = {t: so_far.get(t, 0) + counts.get(t, 0) for t in {*so_far, *counts}}
                done = workspaces.update().where(_W.id == workspace_id).values(deleted_rows=total)
                await conn.execute(done)
        return counts

    async def _deleting_row(
        self, conn: AsyncConnection, workspace_id: str
    ) -> dict[str, int] | None:
        """The deleted-rows totals of a workspace being deleted, its row locked (PostgreSQL,
        MySQL) so two batches never add to the totals at once; None when it is not deleting."""
        stmt = sa.select(_W.deleted_rows).where(_W.id == workspace_id, _W.state == DELETING)
        row = (await conn.execute(stmt.with_for_update() if self._locks else stmt)).first()
        return None if row is None else _counts(row[0])

    async def _instances(
        self, conn: AsyncConnection, workspace_id: str, limit: int
    ) -> dict[str, int]:
        held = sa.exists().where(legal_holds.c.instance_id == _I.id)
        pick = (
            sa.select(_I.id)
            .where(_I.workspace_id == workspace_id, _I.status.in_(_DONE), ~held)
            .limit(limit)
        )
        if self._locks:
            pick = pick.with_for_update(skip_locked=True)
        ids = [str(i) for i in (await conn.execute(pick)).scalars()]
        if not ids:
            return {}
        counts: dict[str, int] = {}
        for table in self.instance_tables:
            gone = await conn.execute(table.delete().where(table.c.instance_id.in_(ids)))
            counts[table.name] = int(gone.rowcount or 0)
        gone = await conn.execute(instances.delete().where(_I.id.in_(ids)))
        counts["instances"] = int(gone.rowcount or 0)
        return counts

    async def _other_rows(
        self, conn: AsyncConnection, workspace_id: str, limit: int
    ) -> dict[str, int]:
        """Up to ``limit`` rows of the first table that still has rows of the workspace."""
        for table in self.tables:
            keys = list(table.primary_key.columns)
            mine = table.c.workspace_id == workspace_id
            picked = (await conn.execute(sa.select(*keys).where(mine).limit(limit))).all()
            if not picked:
                continue
            if len(keys) == 1:
                which = keys[0].in_([r[0] for r in picked])
            else:
                which = sa.tuple_(*keys).in_([tuple(r) for r in picked])
            gone = await conn.execute(table.delete().where(mine, which))
            return {table.name: int(gone.rowcount or 0)}
        return {}

    async def finish(
        self, workspace_id: str, audit: Callable[[Mapping[str, int]], AuditEntry]
    ) -> Mapping[str, int] | None:
        return await shielded(self._store.engine, self._finish(workspace_id, audit))

    async def _finish(
        self, workspace_id: str, audit: Callable[[Mapping[str, int]], AuditEntry]
    ) -> Mapping[str, int] | None:
        async with self._store.write() as tx:
            conn = tx.conn
            totals = await self._deleting_row(conn, workspace_id)
            if totals is None or await _any(conn, instances, _I.workspace_id == workspace_id):
                return None
            for table in self.tables:
                if await _any(conn, table, table.c.workspace_id == workspace_id):
                    return None
            await conn.execute(workspaces.delete().where(_W.id == workspace_id))
            await append_entry(conn, audit(totals))
        return totals


async def _count(conn: AsyncConnection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    stmt = sa.select(sa.func.count()).select_from(table).where(where)
    return int(await conn.scalar(stmt) or 0)


async def _any(conn: AsyncConnection, table: sa.Table, where: sa.ColumnElement[bool]) -> bool:
    stmt = sa.select(sa.literal(1)).select_from(table).where(where).limit(1)
    return (await conn.scalar(stmt)) is not None


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}
