"""The SQL store: one code path for SQLite (WAL, BEGIN IMMEDIATE), PostgreSQL and MySQL (row
locks; MySQL's differences are in ``mysql``). Its queries are ``store_reads.SqlReads`` (its
base); which errors are conflicts or outages, ``faults``."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cadenza.application.payloads import PLAIN, PayloadCodec
from cadenza.application.ports import (
    CRASHED,
    RELEASED,
    IdGenerator,
    LeaseInfo,
    OutboxPublish,
    StoreConflict,
    StoredDefinition,
    Timer,
    Transaction,
)
from cadenza.application.ports_blobs import BlobStore
from cadenza.infrastructure.sql import mysql, outbox, rows, shielded, timer_claims
from cadenza.infrastructure.sql.database import READ_ONLY
from cadenza.infrastructure.sql.faults import mapped_errors, reading
from cadenza.infrastructure.sql.sqlite_tx import SqliteConnection
from cadenza.infrastructure.sql.store_reads import SqlReads
from cadenza.infrastructure.sql.tables import definitions, tasks, timers
from cadenza.infrastructure.sql.transaction import SqlTransaction

_EXPIRY_TRIES = 3  # lease renewals and releases that lose a deadlock are run again


class SqlStore(SqlReads):
    def __init__(
        self, engine: AsyncEngine, codec: PayloadCodec = PLAIN, blobs: BlobStore | None = None
    ) -> None:
        self.engine = engine
        self.blobs = blobs  # offloaded payloads (closed with the store); None: no offload
        # stored payloads: encoded on every write, decoded on every read of this store
        # (the engine's: real values); the API's queries show them (``payload_rows.view_*``)
        self.codec = codec
        self.reader = engine.execution_options(**{READ_ONLY: True})  # same pool
        self.is_postgres = engine.dialect.name == "postgresql"
        self.is_mysql = engine.dialect.name in mysql.DIALECTS
        self._versions: dict[tuple[str, int], StoredDefinition] = {}
        # the engine's own transactions on a SQLite file: plain sqlite3 on one thread
        path = engine.url.database if engine.dialect.name == "sqlite" else None
        self._sqlite = SqliteConnection(path) if path and path != ":memory:" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """The engine's advance transaction (the ``Store`` port)."""
        if self._sqlite is None:
            async with self._sa_transaction() as sa_tx:
                yield sa_tx
            return
        with mapped_errors():
            async with self._sqlite.transaction(self._versions, self.codec) as tx:
                yield tx

    @asynccontextmanager
    async def _sa_transaction(self) -> AsyncIterator[SqlTransaction]:
        """A write transaction through SQLAlchemy (``tx.conn``) for the store's own statements.
        On SQLite it queues behind the engine's transactions in this process (the same lock)
        rather than polling SQLite's busy handler, which sleeps between tries and can starve
        a claim or a lease renewal while the commit loop keeps the file locked."""
        lock = self._sqlite.lock if self._sqlite is not None else contextlib.nullcontext()
        async with lock:
            with mapped_errors():
                async with self.engine.begin() as conn:
                    locks = self.is_postgres or self.is_mysql
                    yield SqlTransaction(conn, locks, self._versions, self.codec)

    def write(self) -> AbstractAsyncContextManager[SqlTransaction]:
        """A write transaction of another adapter over this database (retention), queued on
        the engine's lock on SQLite like the store's own; conflicts and outages mapped."""
        return self._sa_transaction()

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A read-only connection; a store that is away raises ``StoreUnavailable``."""
        return reading(self.reader)

    async def close(self) -> None:
        # the writes whose callers shutdown cancelled finish first: a connection taken after
        # the dispose would never be closed (``shielded``)
        await shielded.settle(self.engine)
        if self._sqlite is not None:
            await self._sqlite.close()
        await self.engine.dispose()
        if self.blobs is not None:
            await self.blobs.close()

    async def probe(self) -> None:
        """A write that changes nothing: SQLite rewrites its header's user_version (a WAL
        frame, so a full disk fails it); PostgreSQL takes a transaction id (a commit record)."""
        async with self._sa_transaction() as tx:
            if self.is_postgres:
                await tx.conn.execute(sa.text("SELECT txid_current()"))
                return
            if self.is_mysql:
                await mysql.probe(tx.conn)
                return
            version = int(await tx.conn.scalar(sa.text("PRAGMA user_version")) or 0)
            await tx.conn.execute(sa.text(f"PRAGMA user_version = {version}"))

    # ---- the outbox (sql/outbox.py) -------------------------------------------------------
    async def relay_outbox(self, limit: int, publish: OutboxPublish) -> int | None:
        async with self._sa_transaction() as tx:
            return await outbox.relay(tx.conn, limit, publish)

    async def outbox_backlog(self) -> int:
        async with self._read() as conn:
            return await outbox.backlog(conn)

    # ---- definitions ---------------------------------------------------------------------
    async def put_definition(self, definition: StoredDefinition) -> StoredDefinition:
        async with self._sa_transaction() as tx:
            conn = tx.conn
            same = (
                await conn.execute(
                    sa.select(definitions).where(
                        definitions.c.process_id == definition.process_id,
                        definitions.c.content_hash == definition.content_hash,
                    )
                )
            ).first()
            if same is not None:
                return rows.definition(same)
            latest = await conn.scalar(
                sa.select(sa.func.max(definitions.c.version)).where(
                    definitions.c.process_id == definition.process_id
                )
            )
            version = int(latest or 0) + 1
            await conn.execute(
                definitions.insert().values(
                    process_id=definition.process_id,
                    version=version,
                    content_hash=definition.content_hash,
                    status=definition.status,
                    document=definition.document,
                    created_at=definition.created_at,
                    workspace_id=definition.workspace_id,
                )
            )
        return StoredDefinition(
            definition.process_id,
            version,
            definition.content_hash,
            definition.status,
            definition.document,
            definition.created_at,
            definition.workspace_id,
        )

    async def get_definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        async with self._read() as conn:
            return await rows.fetch_definition(conn, process_id, version)

    # ---- queue ---------------------------------------------------------------------------
    async def claim(
        self, owner: str, limit: int, now: float, lease_s: float, new_token: IdGenerator
    ) -> list[LeaseInfo]:
        if self.is_mysql:  # no UPDATE ... RETURNING
            async with self._sa_transaction() as tx:
                return await mysql.claim(tx.conn, owner, limit, now, lease_s, new_token())
        pick = (
            sa.select(tasks.c.id)
            .where(tasks.c.status == "scheduled", tasks.c.available_at <= now)
            .order_by(tasks.c.available_at)
            .limit(limit)
        )
        if self.is_postgres:
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            tasks.update()
            .where(tasks.c.id.in_(pick.scalar_subquery()))
            .values(
                status="running",
                leased_to=owner,
                lease_token=new_token(),
                lease_expires_at=now + lease_s,
            )
            .returning(*rows.LEASE_COLUMNS)
        )
        if self._sqlite is not None:
            with mapped_errors():
                found, _ = await self._sqlite.execute(stmt)
            return [rows.lease(r) for r in found]
        async with self._sa_transaction() as tx:
            result = await tx.conn.execute(stmt)
            return [rows.lease(r) for r in result]

    async def renew(self, owner: str, until: float) -> int:
        """Extend every lease ``owner`` holds; ``until=RELEASED`` gives them up (a stop)."""
        return await self._set_expiry(tasks.c.leased_to == owner, until)

    async def release_previous(self, owner: str, holder: str) -> int:
        def earlier(column: sa.Column[Any]) -> sa.ColumnElement[bool]:
            mine = sa.or_(column == owner, column.startswith(f"{owner}/", autoescape=True))
            return sa.and_(mine, column != holder)

        await self._write_count(timer_claims.release_statement(earlier(timers.c.claimed_by)))
        # a lease a clean stop released stays released: only a death is counted
        died = sa.and_(earlier(tasks.c.leased_to), tasks.c.lease_expires_at != RELEASED)
        return await self._set_expiry(died, CRASHED)

    async def _set_expiry(self, which: sa.ColumnElement[bool], until: float) -> int:
        stmt = (
            tasks.update().where(which, tasks.c.status == "running").values(lease_expires_at=until)
        )
        return await self._write_count(stmt)

    async def _write_count(self, stmt: sa.Update) -> int:
        """An idempotent update in its own transaction (run again if it lost a deadlock);
        the rows it changed."""
        if self._sqlite is not None:
            with mapped_errors():
                _, count = await self._sqlite.execute(stmt)
            return count
        for attempt in range(_EXPIRY_TRIES - 1):
            # a deadlock victim (the row locks of a commit, taken in another order) was
            # rolled back whole, and setting an expiry is idempotent: run it again, after a
            # short random pause so that it does not meet the same commit again
            with contextlib.suppress(StoreConflict):
                return await self._update_count(stmt)
            await asyncio.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        return await self._update_count(stmt)

    async def _update_count(self, stmt: sa.Update) -> int:
        async with self._sa_transaction() as tx:
            return int((await tx.conn.execute(stmt)).rowcount or 0)

    async def expired_leases(self, now: float, limit: int) -> list[LeaseInfo]:
        stmt = (
            sa.select(*rows.LEASE_COLUMNS)
            .where(tasks.c.status == "running", tasks.c.lease_expires_at < now)
            .limit(limit)
        )
        async with self._read() as conn:
            return [rows.lease(r) for r in await conn.execute(stmt)]

    async def claim_timers(
        self, holder: str, now: float, limit: int, claim_s: float
    ) -> list[Timer]:
        if self.is_mysql:
            async with self._sa_transaction() as tx:
                return await timer_claims.claim_mysql(tx.conn, holder, now, limit, claim_s)
        locks = self.is_postgres
        stmt = timer_claims.claim_statement(holder, now, limit, claim_s, skip_locked=locks)
        if self._sqlite is not None:  # on the engine's thread, under its write lock
            with mapped_errors():
                found, _ = await self._sqlite.execute(stmt)
            return timer_claims.in_fire_order(found)
        async with self._sa_transaction() as tx:
            return timer_claims.in_fire_order(await tx.conn.execute(stmt))

    async def execute(
        self, statement: sa.Executable, params: Sequence[dict[str, Any]] | None = None
    ) -> None:
        """Run one statement in its own transaction (used by tests and tools)."""
        async with self.engine.begin() as conn:
            await conn.execute(statement, params)
