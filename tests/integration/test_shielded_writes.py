"""A write shielded from its caller's cancellation finishes before the store closes its engine
(``infrastructure/sql/shielded.py``): one that outlived ``SqlStore.close`` took a connection
nobody closed, collected later with aiosqlite's "deleted before being closed" warning."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
import sqlalchemy as sa
from tests.integration.bus_helpers import until

from cadenza.infrastructure.sql import shielded
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.leaders import SqlLeaderLeases
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import leaders


async def _store(url: str) -> SqlStore:
    await asyncio.to_thread(upgrade, url)
    return SqlStore(create_engine(url))


def _unclosed_connections_collected() -> list[str]:
    """The ``ResourceWarning``s of driver connections the garbage collector finds now."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]


async def test_the_store_closes_after_a_shielded_write_whose_caller_was_cancelled(
    database_url: str,
) -> None:
    store = await _store(database_url)
    go, finished = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        await go.wait()
        async with store.engine.begin() as conn:
            await conn.execute(
                leaders.insert().values(name="n", holder="a", expires_at=1.0, acquired_at=0.0)
            )
        finished.set()

    caller = asyncio.ensure_future(shielded.shielded(store.engine, write()))
    await until(lambda: shielded.running(store.engine) == 1, "the write to be registered")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    go.set()  # the write runs while the store closes, on its own
    await store.close()
    assert finished.is_set()
    assert _unclosed_connections_collected() == []


async def test_a_leader_lease_attempt_cut_by_shutdown_ends_before_the_store_closes(
    database_url: str,
) -> None:
    # Runtime.close cancels the leadership loop mid-attempt, then closes the store
    store = await _store(database_url)
    leases = SqlLeaderLeases(store.engine)
    attempt = asyncio.ensure_future(leases.try_acquire("agent-health", "a", 100.0, 15.0))
    await until(lambda: shielded.running(store.engine) == 1, "the attempt to start")
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    await store.close()
    assert _unclosed_connections_collected() == []
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            holder = await conn.scalar(sa.select(leaders.c.holder))
    finally:
        await engine.dispose()
    assert holder == "a"  # the attempt was not cut: it took the free lease


async def test_settle_cancels_a_write_still_running_at_its_deadline(database_url: str) -> None:
    store = await _store(database_url)
    never = asyncio.Event()
    stuck = asyncio.ensure_future(shielded.shielded(store.engine, never.wait()))
    await until(lambda: shielded.running(store.engine) == 1, "the write to be registered")
    await shielded.settle(store.engine, timeout_s=0.01)
    assert shielded.running(store.engine) == 0
    (outcome,) = await asyncio.gather(stuck, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)
    await store.close()
