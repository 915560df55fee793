"""``SqlRetention``: retention policies, legal holds, and the batched purge (the
``RetentionStore`` port) on SQLite, PostgreSQL and MySQL/MariaDB.

One purge batch is one transaction through ``SqlStore.write`` (on SQLite: queued on the
engine's in-process lock, then ``BEGIN IMMEDIATE``):

1. pick up to ``limit`` due instances: finished (or failed) before the cutoff, without a
   legal hold, and not the child of an instance still present (a subprocess goes after its
   parent, so a hold on the parent keeps its children). On PostgreSQL and MySQL the picked
   rows are locked ``FOR UPDATE SKIP LOCKED``: a row the engine or a hold request holds is
   left for the next run, and nothing waits on the job;
2. read the holds of the picked ids again (a locking read: it sees a hold committed after
   the first statement's snapshot; a hold written later waits on the instance's row lock);
3. delete their rows from every table with an ``instance_id`` column (read from ``tables``:
   a table added tomorrow is covered), dependents before what they depend on, the instances
   last;
4. after the commit, delete their offloaded payloads from the blob store (one key prefix per
   instance, ``docs/payloads.md``), counted as ``blobs``.

Running instances are never picked: only ``completed``/``cancelled`` and ``failed`` rows are.
Writes run shielded: a cancelled caller (lease lost, shutdown) must not cut a transaction
between ``BEGIN IMMEDIATE`` and its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.payload_blobs import instance_prefix
from cadenza.application.ports_blobs import BlobStore
from cadenza.application.ports_retention import LegalHold, PurgeScope, StoredPolicy
from cadenza.domain.retention import FAILED, FINISHED, Cutoffs, RetentionPolicy
from cadenza.infrastructure.sql.audit import write_pending
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.shielded import shielded
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import instances, legal_holds, metadata, retention_policies

_I = instances.c
_H = legal_holds.c
_P = retention_policies.c
KEEP = "keep"  # ``Table.info["retention"]``: rows of this table outlive their instance
BLOB_DELETES_AT_ONCE = 16  # instances whose blobs are deleted concurrently after a batch


def instance_tables() -> list[sa.Table]:
    """Every table holding rows of an instance (an ``instance_id`` column), dependents first,
    but those marked ``info={"retention": "keep"}`` and the holds (a held instance is never
    deleted: its hold neither)."""
    return [
        t
        for t in reversed(metadata.sorted_tables)
        if "instance_id" in t.c
        and t not in (instances, legal_holds)
        and t.info.get("retention") != KEEP
    ]


def due(scope: PurgeScope, cutoffs: Cutoffs) -> sa.ColumnElement[bool]:
    """Instances ``cutoffs`` make due in ``scope``, not held, not a child of a present one."""
    ages: list[sa.ColumnElement[bool]] = []
    if cutoffs.finished_before is not None:
        ages.append(
            sa.and_(
                _I.status.in_([s.value for s in FINISHED]), _I.updated_at < cutoffs.finished_before
            )
        )
    if cutoffs.failed_before is not None:
        ages.append(
            sa.and_(_I.status.in_([s.value for s in FAILED]), _I.updated_at < cutoffs.failed_before)
        )
    parent = instances.alias("parent")
    where = [
        sa.or_(*ages) if ages else sa.false(),
        ~sa.exists().where(_H.instance_id == _I.id),
        sa.or_(
            _I.parent_instance_id.is_(None),
            ~sa.exists().where(parent.c.id == _I.parent_instance_id),
        ),
    ]
    if scope.workspace is not None:
        where.append(_I.workspace_id == scope.workspace)
    elif scope.excluding:
        where.append(_I.workspace_id.not_in(sorted(scope.excluding)))
    return sa.and_(*where)


class SqlRetention:
    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._reader = store.engine.execution_options(**{READ_ONLY: True})
        self._locks = store.is_postgres or store.is_mysql
        self.tables = instance_tables()

    # ---- policies --------------------------------------------------------------------------
    async def policy(self, workspace_id: str) -> StoredPolicy | None:
        stmt = sa.select(retention_policies).where(_P.workspace_id == workspace_id)
        async with self._reader.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _policy(row)

    async def policies(self) -> list[StoredPolicy]:
        stmt = sa.select(retention_policies).order_by(_P.workspace_id)
        async with self._reader.connect() as conn:
            return [_policy(r) for r in await conn.execute(stmt)]

    async def put_policy(self, stored: StoredPolicy) -> None:
        values = {
            "finished_s": stored.policy.finished_s,
            "failed_s": stored.policy.failed_s,
            "updated_at": stored.updated_at,
            "updated_by": stored.updated_by,
        }

        async def write() -> None:
            async with self._store.write() as tx:
                mine = _P.workspace_id == stored.workspace_id
                changed = await tx.conn.execute(
                    retention_policies.update().where(mine).values(**values)
                )
                if not changed.rowcount:
                    await tx.conn.execute(
                        retention_policies.insert().values(
                            workspace_id=stored.workspace_id, **values
                        )
                    )
                await write_pending(tx.conn)  # the audit row commits with the change

        await shielded(self._store.engine, write())

    async def delete_policy(self, workspace_id: str) -> bool:
        stmt = retention_policies.delete().where(_P.workspace_id == workspace_id)
        return await shielded(self._store.engine, self._count(stmt)) > 0

    # ---- legal holds -----------------------------------------------------------------------
    async def hold(self, workspace_id: str, instance_id: str) -> LegalHold | None:
        stmt = sa.select(legal_holds).where(
            _H.instance_id == instance_id, _H.workspace_id == workspace_id
        )
        async with self._reader.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _hold(row)

    async def holds(self, workspace_id: str, limit: int) -> list[LegalHold]:
        stmt = (
            sa.select(legal_holds)
            .where(_H.workspace_id == workspace_id)
            .order_by(_H.set_at.desc(), _H.instance_id)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            return [_hold(row) for row in (await conn.execute(stmt)).all()]

    async def instance_exists(self, workspace_id: str, instance_id: str) -> bool:
        stmt = sa.select(_I.id).where(_I.id == instance_id, _I.workspace_id == workspace_id)
        async with self._reader.connect() as conn:
            return (await conn.scalar(stmt)) is not None

    async def set_hold(self, hold: LegalHold) -> LegalHold | None:
        return await shielded(self._store.engine, self._set_hold(hold))

    async def _set_hold(self, hold: LegalHold) -> LegalHold | None:
        values = {"reason": hold.reason, "set_by": hold.set_by, "set_at": hold.set_at}
        async with self._store.write() as tx:
            conn = tx.conn
            # the instance's row lock orders this against a purge batch that picked it
            lock = sa.select(_I.id).where(
                _I.id == hold.instance_id, _I.workspace_id == hold.workspace_id
            )
            if await conn.scalar(lock.with_for_update() if self._locks else lock) is None:
                return None
            mine = _H.instance_id == hold.instance_id
            if not (await conn.execute(legal_holds.update().where(mine).values(**values))).rowcount:
                await conn.execute(
                    legal_holds.insert().values(
                        instance_id=hold.instance_id, workspace_id=hold.workspace_id, **values
                    )
                )
            await write_pending(conn)
        return hold

    async def clear_hold(self, workspace_id: str, instance_id: str) -> bool:
        stmt = legal_holds.delete().where(
            _H.instance_id == instance_id, _H.workspace_id == workspace_id
        )
        return await shielded(self._store.engine, self._count(stmt)) > 0

    # ---- the purge -------------------------------------------------------------------------
    async def purge(self, scope: PurgeScope, cutoffs: Cutoffs, limit: int) -> dict[str, int]:
        if cutoffs.empty or limit < 1:
            return {"instances": 0}
        return await shielded(self._store.engine, self._purge(scope, cutoffs, limit))

    async def _purge(self, scope: PurgeScope, cutoffs: Cutoffs, limit: int) -> dict[str, int]:
        pick = sa.select(_I.id, _I.workspace_id).where(due(scope, cutoffs)).limit(limit)
        if self._locks:
            pick = pick.with_for_update(skip_locked=True)
        async with self._store.write() as tx:
            conn = tx.conn
            workspaces = {str(i): str(w) for i, w in (await conn.execute(pick)).all()}
            ids = await self._not_held(conn, list(workspaces))
            counts = {"instances": 0}
            if not ids:
                return counts
            for table in self.tables:
                stmt = table.delete().where(table.c.instance_id.in_(ids))
                counts[table.name] = int((await conn.execute(stmt)).rowcount or 0)
            gone = await conn.execute(instances.delete().where(_I.id.in_(ids)))
            counts["instances"] = int(gone.rowcount or 0)
        # after the commit: a crash here leaves orphan blobs (the collector's), never a row
        # pointing at a deleted blob
        if self._store.blobs is not None:
            owners = [(workspaces[i], i) for i in ids]
            counts["blobs"] = await purge_blobs(self._store.blobs, owners)
        return counts

    async def present(self, ids: Sequence[str]) -> set[str]:
        """Which of these instances have a row (the orphan blob collector asks)."""
        found: set[str] = set()
        async with self._reader.connect() as conn:
            for i in range(0, len(ids), 500):
                stmt = sa.select(_I.id).where(_I.id.in_(ids[i : i + 500]))
                found.update(str(r) for r in (await conn.execute(stmt)).scalars())
        return found

    async def _not_held(self, conn: AsyncConnection, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        check = sa.select(_H.instance_id).where(_H.instance_id.in_(ids))
        held = set(
            (await conn.execute(check.with_for_update() if self._locks else check)).scalars()
        )
        return [i for i in ids if i not in held]

    async def _count(self, stmt: sa.Delete) -> int:
        async with self._store.write() as tx:
            count = int((await tx.conn.execute(stmt)).rowcount or 0)
            if count:
                await write_pending(tx.conn)  # a delete that removed nothing is no change
            return count


async def purge_blobs(blobs: BlobStore | None, owners: Sequence[tuple[str, str]]) -> int:
    """Delete the offloaded payloads of these (workspace, instance) pairs: one prefix each,
    a few at a time (an S3 prefix delete is a list and a delete request)."""
    if blobs is None or not owners:
        return 0
    gate = asyncio.Semaphore(BLOB_DELETES_AT_ONCE)

    async def one(ws: str, iid: str) -> int:
        async with gate:
            return await blobs.delete_prefix(instance_prefix(ws, iid))

    return sum(await asyncio.gather(*(one(ws, iid) for ws, iid in owners)))


def _policy(row: sa.Row[tuple[object, ...]]) -> StoredPolicy:
    m = row._mapping
    policy = RetentionPolicy(_float(m["finished_s"]), _float(m["failed_s"]))
    return StoredPolicy(
        str(m["workspace_id"]), policy, float(str(m["updated_at"])), str(m["updated_by"])
    )


def _hold(row: sa.Row[tuple[object, ...]]) -> LegalHold:
    m = row._mapping
    reason = m["reason"]
    return LegalHold(
        str(m["instance_id"]),
        str(m["workspace_id"]),
        None if reason is None else str(reason),
        str(m["set_by"]),
        float(str(m["set_at"])),
    )


def _float(value: object) -> float | None:
    return None if value is None else float(str(value))
