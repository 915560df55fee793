"""The engine's transactions on SQLite: plain ``sqlite3`` on one thread, few hops per commit.

A group commit on SQLite used to cost a hop to aiosqlite's thread per statement (BEGIN, each
read, each write, COMMIT), each through SQLAlchemy's compiler and greenlet bridge. Here the
engine's transactions run on a dedicated connection owned by one thread: ``BEGIN IMMEDIATE``
travels with the first read, and the writes of a batch, prepared on the loop
(``sqlite_writer``), run together with COMMIT. A batch that starts an instance of a known
version and runs it through pure nodes is one hop; one that completes a task is two (the
locking reads, then writes and COMMIT). Claims and lease-expiry updates run here too
(``execute``), one hop each, queued on the same in-process lock. Queries and definitions keep
using SQLAlchemy;
SQLite's file lock (``BEGIN IMMEDIATE`` + busy timeout) serializes writers across connections
and processes as before.

Errors are raised as SQLAlchemy's ``DBAPIError`` subclasses so the store maps conflicts and
outages the same way on every path.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DBAPIError

from cadenza.application.payloads import PLAIN, PayloadCodec
from cadenza.application.ports import Changes, InstanceHeader, LeaseInfo, StoredDefinition, Timer
from cadenza.domain.events import Event
from cadenza.infrastructure.sql import rows
from cadenza.infrastructure.sql.payload_rows import decode_event
from cadenza.infrastructure.sql.sqlite_writer import Statement, statements

_T = TypeVar("_T")
_DIALECT = sqlite_dialect.dialect(paramstyle="qmark")
CHUNK = 500  # ids per IN (...) list
BUSY_TIMEOUT_MS = 30_000  # as the SQLAlchemy connections: wait this long for the write lock


_HEADERS = "SELECT id, process_id, version, seq, trace_context FROM instances"
_LEASES = (
    "SELECT id, instance_id, status, attempt, leased_to, lease_token, lease_expires_at FROM tasks"
)


def _by_ids(select: str, n: int) -> str:
    """``select`` (a constant above) for ``n`` ids, in id order (the lock order)."""
    marks = ", ".join("?" for _ in range(n))
    return f"{select} WHERE id IN ({marks}) ORDER BY id"


class SqliteConnection:
    """One ``sqlite3`` connection and the one thread that uses it; one transaction at a time."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-engine")
        self._conn: sqlite3.Connection | None = None
        # one writer of this process at a time, in arrival order: the engine's transactions
        # and the store's own writes through SQLAlchemy (``SqlStore._sa_transaction``)
        self.lock = asyncio.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the connection's thread; sqlite3 errors as SQLAlchemy raises them."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(self._open()))
        except sqlite3.Error as exc:
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    @asynccontextmanager
    async def transaction(
        self, versions: dict[tuple[str, int], StoredDefinition], codec: PayloadCodec = PLAIN
    ) -> AsyncIterator[SqliteTransaction]:
        async with self.lock:
            tx = SqliteTransaction(self, versions, codec)
            try:
                yield tx
            except BaseException:
                if tx.begun:  # shielded: a cancelled batch must not leave the write lock held
                    await asyncio.shield(self.run(_rollback))
                raise
            if tx.begun or tx.pending:  # the saved writes and COMMIT: one hop
                await self.run(tx.commit_in_thread())

    async def execute(self, statement: sa.Update) -> tuple[list[tuple[Any, ...]], int]:
        """Run one SQLAlchemy write statement as its own transaction, in one hop: its rows
        (``RETURNING``) and its row count. The store's writes beside the engine's (claims,
        lease renewal) queue on the same lock and thread rather than on SQLite's busy
        handler, which sleeps between tries and can starve them while the engine writes."""
        sql, params = _compiled(statement)

        def write(conn: sqlite3.Connection) -> tuple[list[tuple[Any, ...]], int]:
            _begin(conn)
            try:
                cursor = conn.execute(sql, params)
                found = cursor.fetchall()
                count = cursor.rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)  # SQLite may have rolled back already (a full disk at COMMIT)
                raise
            return found, count

        async with self.lock:
            return await self.run(write)

    async def close(self) -> None:
        def close(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self.run(close)
        self._pool.shutdown(wait=False)


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        _rollback(conn)  # a COMMIT that failed may leave the transaction open (SQLITE_BUSY)
        raise


def _compiled(statement: sa.Select[Any] | sa.Update) -> tuple[str, list[Any]]:
    """A SQLAlchemy statement as SQLite's SQL and positional parameters."""
    compiled = statement.compile(dialect=_DIALECT)
    return str(compiled), [compiled.params[name] for name in compiled.positiontup or ()]


def _begin(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:  # left open by a batch that was cut off: not ours
        conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteTransaction:
    """The engine's ``Transaction`` port on SQLite: reads and one batched write."""

    def __init__(
        self,
        conn: SqliteConnection,
        versions: dict[tuple[str, int], StoredDefinition],
        codec: PayloadCodec = PLAIN,
    ) -> None:
        self._conn = conn
        self._codec = codec
        self._definitions = rows.SeenDefinitions(versions)
        self.begun = False
        # writes saved but not yet run: they travel with the next read's hop, or with COMMIT
        self.pending: list[Statement] = []

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        begin = not self.begun
        self.begun = True
        pending, self.pending = self.pending, []

        def in_transaction(conn: sqlite3.Connection) -> _T:
            if begin:
                _begin(conn)
            _write(conn, pending)  # a read after a save sees the saved rows
            return fn(conn)

        return await self._conn.run(in_transaction)

    def commit_in_thread(self) -> Callable[[sqlite3.Connection], None]:
        """What ends the transaction on the connection's thread: BEGIN when nothing ran yet,
        the saved writes, COMMIT; a failure rolls back there and is raised."""
        begin = not self.begun
        pending, self.pending = self.pending, []

        def finish(conn: sqlite3.Connection) -> None:
            try:
                if begin:
                    _begin(conn)
                _write(conn, pending)
            except BaseException:
                _rollback(conn)
                raise
            _commit(conn)

        return finish

    async def lock_instances(self, ids: Sequence[str]) -> dict[str, InstanceHeader]:
        wanted = sorted(ids)

        def read(conn: sqlite3.Connection) -> dict[str, InstanceHeader]:
            out: dict[str, InstanceHeader] = {}
            for i in range(0, len(wanted), CHUNK):
                chunk = wanted[i : i + CHUNK]
                for iid, pid, version, seq, trace in conn.execute(
                    _by_ids(_HEADERS, len(chunk)), chunk
                ):
                    out[iid] = InstanceHeader(iid, pid, int(version), int(seq), trace)
            return out

        return await self._run(read)

    async def events_after(self, instance_id: str, seq: int) -> list[Event]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, str, float, str]]:
            return conn.execute(
                "SELECT type, event_id, occurred_at, data FROM events "
                "WHERE instance_id = ? AND seq > ? ORDER BY seq",
                (instance_id, seq),
            ).fetchall()

        codec = self._codec
        return [
            await decode_event(codec, kind, instance_id, event_id, occurred_at, json.loads(data))
            for kind, event_id, occurred_at, data in await self._run(read)
        ]

    async def lock_tasks(self, task_ids: Sequence[str]) -> dict[str, LeaseInfo]:
        wanted = sorted(task_ids)

        def read(conn: sqlite3.Connection) -> dict[str, LeaseInfo]:
            out: dict[str, LeaseInfo] = {}
            for i in range(0, len(wanted), CHUNK):
                chunk = wanted[i : i + CHUNK]
                found = conn.execute(_by_ids(_LEASES, len(chunk)), chunk)
                for values in found:
                    info = rows.lease(values)
                    out[info.task_id] = info
            return out

        return await self._run(read)

    async def definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        async def fetch() -> StoredDefinition | None:  # only when not seen: no compile per start
            sql, params = _compiled(rows.definition_select(process_id, version))

            def read(conn: sqlite3.Connection) -> StoredDefinition | None:
                cursor = conn.execute(sql, params)
                found = cursor.fetchone()
                if found is None:
                    return None
                row = dict(zip([d[0] for d in cursor.description], found, strict=True))
                row["document"] = json.loads(row["document"])  # as SQLAlchemy's JSON type does
                return rows.definition(SimpleNamespace(**row))

            return await self._run(read)

        return await self._definitions.get(process_id, version, fetch)

    async def instance_by_idempotency_key(self, key: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT id FROM instances WHERE idempotency_key = ?", (key,))
            found = row.fetchone()
            return None if found is None else str(found[0])

        return await self._run(read)

    async def timers_for(self, instance_id: str) -> list[Timer]:
        def read(conn: sqlite3.Connection) -> list[Timer]:
            rows = conn.execute(
                "SELECT id, instance_id, task_id, kind, fire_at FROM timers WHERE instance_id = ?",
                (instance_id,),
            )
            return [Timer(t, i, task, kind, float(at)) for t, i, task, kind, at in rows]

        return await self._run(read)

    async def save(self, changes: Changes) -> None:
        """Prepare the batch's writes; they run with COMMIT, in the same hop (or with a read
        that follows). A write that fails (a duplicate key) is raised at the end of the
        ``async with``, which the engine's commit loop handles like a failed ``save``.
        Offloaded payloads are written to the blob store here, before the rows."""
        prepared, batch = statements(changes, self._codec)
        await batch.flush()
        self.pending.extend(prepared)


def _write(conn: sqlite3.Connection, batch: list[Statement]) -> None:
    for sql, params in batch:
        conn.executemany(sql, params)
