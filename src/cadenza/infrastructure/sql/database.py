"""Create the async engine for a database URL and bring its schema up to date."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
READ_ONLY = "cadenza_read_only"  # execution option: this connection never writes


def normalize_url(url: str) -> str:
    """Accept plain ``sqlite:///``, ``postgresql://`` and ``mysql://`` (or ``mariadb://``)
    URLs and pick the async drivers."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith(("mysql", "mariadb")):
        from cadenza.infrastructure.sql import mysql

        return mysql.normalize(url)
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            name = url[len(prefix) :].split("?", 1)[0]
            return Path(name) if name and name != ":memory:" else None
    return None


def prepare_sqlite_file(url: str) -> None:
    """Create the SQLite file's directory (mode 0700) and the empty file (0600) when they do
    not exist yet, before SQLite does it with the umask's modes: the database holds password
    hashes and everything the engine runs. SQLite gives its ``-wal`` and ``-shm`` files the
    database file's mode. Existing directories and files keep the modes their owner chose."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("database file %s has mode %o, open to others: chmod 600", path, mode)


def create_engine(url: str) -> AsyncEngine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    if url.startswith("mysql"):
        # also registers MySQL's column types before Alembic compiles any DDL
        from cadenza.infrastructure.sql import mysql

        return create_async_engine(url, **mysql.engine_options())
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    # WAL lets readers run beside the writer; BEGIN IMMEDIATE takes the write lock up front so
    # two writers never deadlock upgrading a read lock (SQLITE_BUSY mid-transaction).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the write lock up front; connections marked read-only get a deferred
        # BEGIN and read a WAL snapshot beside the writer instead of queueing behind it
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def upgrade(url: str) -> None:
    """Run Alembic migrations to head (blocking: call through a thread from async code).

    A SQLite file already at head is recognized without importing Alembic (start-up time)."""
    from cadenza.infrastructure.sql.schema_version import sqlite_at_head

    if sqlite_at_head(url):
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url))
    command.upgrade(cfg, "head")
