"""MySQL 8 / MariaDB ≥ 10.6 (through ``asyncmy``): what differs from SQLite and PostgreSQL.

Column types. ``tables.py`` and the migrations use generic types; on MySQL four of them would
mean something else than on the other databases, so their DDL is rendered differently here
(imported by ``database``, hence by Alembic's environment, before any DDL is compiled):

- ``Float`` with no precision is ``DOUBLE``: MySQL's ``FLOAT`` is single precision (a
  timestamp ``1764646056.12`` would come back as ``1764650000.0``).
- ``Text`` with no length is ``LONGTEXT``, ``LargeBinary`` with no length ``LONGBLOB``:
  MySQL's ``TEXT`` and ``BLOB`` stop at 65,535 bytes.
- ``JSON`` is ``LONGTEXT``: MySQL 8 stores ``JSON`` in a binary form that reorders object keys
  and turns integers beyond 64 bits into doubles; PostgreSQL's ``json`` and SQLite give back
  the text they were given, and so does this. SQLAlchemy's JSON type still encodes and decodes.

Sessions. Every connection runs at READ COMMITTED (what PostgreSQL runs at: a locking read
takes the newest committed row and later reads see it; InnoDB's default REPEATABLE READ
would add gap locks and with them deadlocks between claims and inserts), in strict SQL mode
(a value too long for its column is an error, never cut), with ``utf8mb4``.

Claims. MySQL has no ``UPDATE ... RETURNING`` (MariaDB has it for INSERT and DELETE only)
and refuses an UPDATE whose subquery reads the same table, so a claim is two statements in
one transaction: ``SELECT ... FOR UPDATE SKIP LOCKED``, then the UPDATE of the rows found.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles

from cadenza.application.ports import LeaseInfo
from cadenza.infrastructure.sql.tables import tasks

DIALECTS = ("mysql", "mariadb")
DRIVER = "mysql+asyncmy"
# strict mode: a value that does not fit its column fails instead of being truncated
SQL_MODE = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
ISOLATION = "READ COMMITTED"
POOL_RECYCLE_S = 3600  # reconnect before a server's wait_timeout (8 h by default) drops us
MIGRATION_LOCK_WAIT_S = 600  # how long ``upgrade`` waits for another process's migrations
# a named lock per database (names are server-wide, at most 64 characters)
_MIGRATION_LOCK = "CONCAT('cadenza.migrate.', LEFT(SHA1(DATABASE()), 40))"


def normalize(url: str) -> str:
    """``mysql://`` and ``mariadb://`` (any driver) become ``mysql+asyncmy://``, and the
    connection's character set is ``utf8mb4`` unless the URL names one."""
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0] not in DIALECTS:
        return url
    if "charset=" not in rest:
        rest += ("&" if "?" in rest else "?") + "charset=utf8mb4"
    return f"{DRIVER}://{rest}"


def engine_options() -> dict[str, Any]:
    """Keyword arguments of ``create_async_engine`` for MySQL."""
    return {
        "pool_size": 10,
        "max_overflow": 10,
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE_S,
        "isolation_level": ISOLATION,
        "connect_args": {"init_command": f"SET SESSION sql_mode = '{SQL_MODE}'"},
    }


async def claim(
    conn: AsyncConnection, owner: str, limit: int, now: float, lease_s: float, token: str
) -> list[LeaseInfo]:
    """Lease up to ``limit`` due tasks to ``owner`` (inside the caller's transaction)."""
    pick = (
        sa.select(tasks.c.id, tasks.c.instance_id, tasks.c.attempt)
        .where(tasks.c.status == "scheduled", tasks.c.available_at <= now)
        .order_by(tasks.c.available_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    picked = (await conn.execute(pick)).all()
    if not picked:
        return []
    expires = now + lease_s
    await conn.execute(
        tasks.update()
        .where(tasks.c.id.in_([r.id for r in picked]))
        .values(status="running", leased_to=owner, lease_token=token, lease_expires_at=expires)
    )
    return [
        LeaseInfo(r.id, r.instance_id, "running", int(r.attempt), owner, token, expires)
        for r in picked
    ]


async def probe(conn: AsyncConnection) -> None:
    """A write that changes nothing, through InnoDB's write path (row lock, a transaction id)."""
    await conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))


def _not_the_pk_name_note(record: logging.LogRecord) -> bool:
    # Alembic names alembic_version's primary key; MySQL ignores the name, says so in a note,
    # and the driver logs every note as a warning
    return "ignored for PRIMARY key" not in record.getMessage()


@contextlib.contextmanager
def migrating(connection: Connection) -> Iterator[None]:
    """Around Alembic's run: one process at a time migrates a database (MySQL's DDL commits
    at once, so two processes starting together would both create the first table and one
    would fail), and tables created from here on compare and sort text byte by byte, as on
    SQLite and PostgreSQL (a server's default collation ignores case: "Ab" would equal "ab")."""
    wait = f"SELECT GET_LOCK({_MIGRATION_LOCK}, {MIGRATION_LOCK_WAIT_S})"
    if connection.exec_driver_sql(wait).scalar() != 1:
        raise RuntimeError(
            f"another process held the migration lock of this database for "
            f"{MIGRATION_LOCK_WAIT_S} s; is an upgrade stuck?"
        )
    driver_log = logging.getLogger("asyncmy")
    driver_log.addFilter(_not_the_pk_name_note)
    try:
        connection.exec_driver_sql("ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield
    finally:
        driver_log.removeFilter(_not_the_pk_name_note)
        with contextlib.suppress(DBAPIError):  # a lost connection released it already
            connection.exec_driver_sql(f"SELECT RELEASE_LOCK({_MIGRATION_LOCK})")


# ---- DDL ------------------------------------------------------------------------------------
_Compile = TypeVar("_Compile", bound=Callable[..., str])


def _for_mysql(type_: type[sa.types.TypeEngine[Any]]) -> Callable[[_Compile], _Compile]:
    def register(fn: _Compile) -> _Compile:
        for name in DIALECTS:
            compiles(type_, name)(fn)
        return fn

    return register


@_for_mysql(sa.Float)
def _float(type_: sa.Float[Any], compiler: Any, **kw: Any) -> str:
    if type_.precision is None:
        return "DOUBLE"
    return str(compiler.visit_float(type_, **kw))


@_for_mysql(sa.Text)
def _text(type_: sa.Text, compiler: Any, **kw: Any) -> str:
    return "LONGTEXT" if type_.length is None else str(compiler.visit_text(type_, **kw))


@_for_mysql(sa.LargeBinary)
def _binary(type_: sa.LargeBinary, compiler: Any, **kw: Any) -> str:
    if type_.length is None:
        return "LONGBLOB"
    return str(compiler.visit_large_binary(type_, **kw))


@_for_mysql(sa.JSON)
def _json(type_: sa.JSON, compiler: Any, **kw: Any) -> str:
    return "LONGTEXT"
