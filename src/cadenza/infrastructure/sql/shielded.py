"""Shielded writes that the store waits for before it disposes its engine.

The SQL adapters shield their writes from cancellation: a caller cut off (its timeout, a lost
lease, shutdown) must not end a transaction between ``BEGIN IMMEDIATE`` and its end, which on
SQLite could leave the write lock with a connection nobody closes. The shielded write then
runs on its own, and nothing waited for it: when shutdown cancelled its caller (``Runtime.close``
cancelling a leader-lease attempt), it outlived ``SqlStore.close``. It took its connection
after ``engine.dispose()``, from the fresh pool the dispose leaves behind (or returned one to
the pool the dispose had replaced), and no one closed that pool: the connection was collected
unclosed, and aiosqlite's "deleted before being closed" ``ResourceWarning`` surfaced in
whichever later test the garbage collector ran in.

``shielded`` registers each such write under its engine's pool, and ``settle`` (called by
``SqlStore.close`` before the dispose) waits for the running ones: a shutdown lets the write
it interrupted finish, as the shield promises, and then closes every connection.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# how long a closing store waits for the writes still running before it cancels them (their
# transactions roll back): these are single statements or short batches, and shutdown must
# end well within an orchestrator's grace period (30 s by default on Kubernetes)
SETTLE_S = 10.0

# the running shielded writes of each pool (an engine and its ``execution_options`` copies
# share one; a disposed engine's next pool starts with none)
_running: weakref.WeakKeyDictionary[Pool, set[asyncio.Task[Any]]] = weakref.WeakKeyDictionary()


async def shielded(engine: AsyncEngine, write: Coroutine[Any, Any, _T]) -> _T:
    """Run ``write`` to its end even when the caller is cancelled (``asyncio.shield``), where
    ``settle`` finds it."""
    task = asyncio.ensure_future(write)
    tasks = _running.setdefault(engine.sync_engine.pool, set())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return await asyncio.shield(task)


def running(engine: AsyncEngine) -> int:
    """How many shielded writes on ``engine`` have not finished yet."""
    return len(_running.get(engine.sync_engine.pool, ()))


async def settle(engine: AsyncEngine, timeout_s: float = SETTLE_S) -> None:
    """Wait for the shielded writes on ``engine`` still running (their callers were cancelled,
    or are waiting too); those not done within ``timeout_s`` are cancelled. Their outcomes
    were reported to their callers, or no one is left to report them to: not raised here."""
    loop = asyncio.get_running_loop()
    tasks = [t for t in _running.get(engine.sync_engine.pool, ()) if t.get_loop() is loop]
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=timeout_s)
    for task in late:
        log.warning("a database write did not finish within %g s of shutdown: cancelled", timeout_s)
        task.cancel()
    if late:
        await asyncio.wait(late)
    for task in tasks:  # retrieved: no "exception was never retrieved" for a failed one
        if not task.cancelled():
            task.exception()
