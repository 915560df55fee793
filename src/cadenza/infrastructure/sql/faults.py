"""Which database errors mean "the store is unavailable" or "a conflict, run it again" rather
than "this statement is wrong".

An unavailable store (the server is down or restarting, the connection dropped, the disk is
full) is a fault of the environment: the same work succeeds once it clears, so the engine keeps
the work and retries with backoff. Anything else is a bug or a conflict and is not retried
blindly. The classification errs on the narrow side: an error it does not know stays an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cadenza.application.ports import StoreConflict, StoreUnavailable

# PostgreSQL SQLSTATE classes and codes of a store that is away, not of a wrong statement:
# 08 connection exception, 53 insufficient resources (53100 disk full), 57P01-57P03 admin
# shutdown, crash shutdown, cannot connect now (starting up or shutting down).
_PG_CLASSES = ("08", "53")
_PG_CODES = frozenset({"57P01", "57P02", "57P03"})
# MySQL / MariaDB error numbers (``args[0]`` of the driver's error): 2002/2003 cannot connect,
# 2006 server has gone away, 2013 lost connection during a query, 2055 lost connection
# (system error), 1040 too many connections, 1053 server shutdown in progress, 1021 disk
# full, 1114 table full (its tablespace cannot grow), 1927 connection killed (MariaDB),
# 4031 disconnected by the server for inactivity (MySQL 8)
_MYSQL_CODES = frozenset({2002, 2003, 2006, 2013, 2055, 1040, 1053, 1021, 1114, 1927, 4031})
# SQLite result codes (``sqlite_errorname``) of a file that cannot be written or read
_SQLITE_NAMES = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")
_SQLITE_TEXTS = ("database or disk is full", "disk i/o error", "unable to open database file")


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The ``StoreUnavailable`` to raise instead of ``exc``, or None when ``exc`` is not one."""
    if isinstance(exc, DBAPIError):
        reason = _dbapi_reason(exc)
    elif isinstance(exc, OSError):  # the driver could not connect (refused, reset, timeout)
        reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = None
    return None if reason is None else StoreUnavailable(reason)


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of ``engine`` for reads; a store that is away raises ``StoreUnavailable``."""
    try:
        async with engine.connect() as conn:
            yield conn
    except (DBAPIError, OSError) as exc:
        down = unavailable(exc)
        if down is None:
            raise
        raise down from exc


def _dbapi_reason(exc: DBAPIError) -> str | None:
    orig = exc.orig
    text = str(orig) if orig is not None else str(exc)
    reason = f"{type(orig).__name__ if orig is not None else type(exc).__name__}: {text}"
    if exc.connection_invalidated:
        return reason
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(code, str) and (code in _PG_CODES or code[:2] in _PG_CLASSES):
        return reason
    args: tuple[object, ...] = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_CODES:
        return reason
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str) and name.startswith(_SQLITE_NAMES):
        return reason
    lowered = text.lower()
    if any(t in lowered for t in _SQLITE_TEXTS):
        return reason
    return None


# ---- conflicts: the transaction is run again -------------------------------------------
_CONFLICT_CODES = ("40001", "40P01", "55P03")
# MySQL error numbers of a transaction to retry: deadlock, lock wait timeout
_MYSQL_CONFLICTS = frozenset({1213, 1205})


def _is_conflict(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    text = str(exc.orig).lower() if exc.orig is not None else ""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    return (
        code in _CONFLICT_CODES
        or (bool(args) and args[0] in _MYSQL_CONFLICTS)
        or "deadlock" in text
        or "database is locked" in text
        or (isinstance(exc, OperationalError) and "locked" in text)
    )


def _raise_if_unavailable(exc: BaseException) -> None:
    down = unavailable(exc)
    if down is not None:
        raise down from exc


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Around a store's write: conflicts (a deadlock, a serialization failure, a lock held,
    a unique key taken) as ``StoreConflict``, to run again; outages as ``StoreUnavailable``;
    the rest unchanged."""
    try:
        yield
    except DBAPIError as exc:
        if _is_conflict(exc):
            raise StoreConflict(str(exc.orig)) from exc
        _raise_if_unavailable(exc)
        raise
    except OSError as exc:
        _raise_if_unavailable(exc)
        raise
