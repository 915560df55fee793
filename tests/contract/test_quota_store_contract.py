"""The QuotaStore port's contract on every adapter (memory, the reference; SQLite; PostgreSQL;
MariaDB), and, on the databases, that two processes' stores share one count: racing starts
never pass the limit and spend added by two workers adds up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.pg import BACKENDS, STORES, backend_url

from cadenza.application.ports_quotas import (
    BudgetLimits,
    QuotaLimits,
    QuotaStore,
    Reservation,
    Spend,
)
from cadenza.infrastructure.quotas_memory import MemoryQuotaStore
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.quotas import SqlQuotaStore
from cadenza.infrastructure.sql.tables import instances

WS = "team-a"
NO_LIMITS = BudgetLimits(None, None, None, None)


def _held(tokens: int, cost: float = 0.0, day: str = "2026-12-02") -> Reservation:
    return Reservation(WS, day, day[:7], tokens, cost)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QuotaStore]:
    url = backend_url(request, tmp_path)
    if url == "memory://":

        async def running(_: str) -> int:
            return 0

        yield MemoryQuotaStore(running)
        return
    await asyncio.to_thread(upgrade, url)
    engine: AsyncEngine = create_engine(url)
    try:
        yield SqlQuotaStore(engine)
    finally:
        await engine.dispose()


# ---- the port ----------------------------------------------------------------------------
async def test_limits_are_absent_until_set_and_replaced_whole(store: QuotaStore) -> None:
    assert await store.limits(WS) is None
    await store.set_limits(WS, QuotaLimits(max_running=3, cost_per_day=1.5), 100.0)
    assert await store.limits(WS) == QuotaLimits(max_running=3, cost_per_day=1.5)
    await store.set_limits(WS, QuotaLimits(tokens_per_month=10**12), 101.0)
    assert await store.limits(WS) == QuotaLimits(tokens_per_month=10**12)
    assert await store.limits("other") is None


async def test_starts_are_counted_per_minute_up_to_the_limit(store: QuotaStore) -> None:
    assert [await store.take_start(WS, 500, 2) for _ in range(3)] == [1, 2, None]
    assert await store.starts(WS, 500) == 2
    assert await store.take_start(WS, 501, 2) == 1  # a new minute starts from zero
    assert await store.take_start("other", 500, 2) == 1
    assert await store.take_start(WS, 502, None) == 1  # no limit: counted all the same
    assert await store.take_start(WS, 503, 0) is None


async def test_a_reservation_is_taken_only_when_day_and_month_both_fit(store: QuotaStore) -> None:
    month_of_100 = BudgetLimits(None, 100, None, None)
    assert await store.reserve(_held(60, day="2026-12-01"), month_of_100)
    assert not await store.reserve(_held(50), month_of_100)  # 60 + 50 > 100 this month
    assert await store.spent(WS, "2026-12-02", "2026-12") == (Spend(), Spend(60, 0.0))
    assert await store.reserve(_held(40), month_of_100)
    assert await store.spent(WS, "2026-12-02", "2026-12") == (Spend(40), Spend(100))


async def test_cost_budget_counts_cost_and_spend_may_be_given_back(store: QuotaStore) -> None:
    assert await store.reserve(_held(10, 0.5), BudgetLimits(None, None, 1.0, None))
    assert not await store.reserve(_held(10, 0.75), BudgetLimits(None, None, 1.0, None))
    await store.add(_held(-4, -0.25))  # a turn that used less than it held
    today, month = await store.spent(WS, "2026-12-02", "2026-12")
    assert (today.tokens, round(today.cost, 8)) == (6, 0.25)
    assert (month.tokens, round(month.cost, 8)) == (6, 0.25)
    assert await store.reserve(_held(1, 0.75), BudgetLimits(None, None, 1.0, None))
    assert await store.reserve(_held(10**6), NO_LIMITS)


async def test_admitted_starts_hold_a_running_place_until_released_or_expired(
    store: QuotaStore,
) -> None:
    assert await store.admit_running(WS, 2, "h1", 160.0, 100.0) is None
    assert await store.admit_running(WS, 2, "h2", 170.0, 101.0) is None
    assert await store.admit_running(WS, 2, "h3", 170.0, 102.0) == 2
    assert await store.admit_running("other", 1, "h1", 170.0, 102.0) is None
    await store.release_running(WS, "h1")
    assert await store.admit_running(WS, 2, "h3", 170.0, 103.0) is None
    assert await store.admit_running(WS, 2, "h4", 180.0, 169.9) == 2
    assert await store.admit_running(WS, 2, "h4", 180.0, 170.0) is None  # h2, h3 expired
    assert await store.admit_running(WS, 0, "h5", 180.0, 170.0) == 1


# ---- two processes on one database ----------------------------------------------------------
@dataclass
class Pair:
    a: SqlQuotaStore
    b: SqlQuotaStore
    engine: AsyncEngine


@pytest.fixture(params=BACKENDS)
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    url = backend_url(request, tmp_path)
    await asyncio.to_thread(upgrade, url)
    one, two = create_engine(url), create_engine(url)
    try:
        yield Pair(SqlQuotaStore(one), SqlQuotaStore(two), one)
    finally:
        await one.dispose()
        await two.dispose()


async def test_racing_starts_in_two_processes_never_pass_the_limit(pair: Pair) -> None:
    takes = [(pair.a if i % 2 else pair.b).take_start(WS, 900, 7) for i in range(20)]
    taken = await asyncio.gather(*takes)
    assert sorted(t for t in taken if t is not None) == [1, 2, 3, 4, 5, 6, 7]
    assert await pair.a.starts(WS, 900) == await pair.b.starts(WS, 900) == 7


async def test_racing_admissions_in_two_processes_never_pass_the_running_limit(
    pair: Pair,
) -> None:
    admits = [
        (pair.a if i % 2 else pair.b).admit_running(WS, 3, f"h{i}", 200.0, 100.0) for i in range(10)
    ]
    refused = await asyncio.gather(*admits)
    assert sorted(refused, key=lambda n: -1 if n is None else n) == [None] * 3 + [3] * 7


async def test_racing_reservations_in_two_processes_never_pass_the_budget(pair: Pair) -> None:
    budget = BudgetLimits(100, None, None, None)
    held = await asyncio.gather(
        *[(pair.a if i % 2 else pair.b).reserve(_held(30), budget) for i in range(8)]
    )
    assert sorted(held) == [False] * 5 + [True] * 3
    assert (await pair.b.spent(WS, "2026-12-02", "2026-12"))[0] == Spend(90)


async def test_spend_added_by_two_workers_adds_up_for_both(pair: Pair) -> None:
    await asyncio.gather(*[pair.a.add(_held(5, 0.01)) for _ in range(10)])
    await asyncio.gather(*[pair.b.add(_held(7, 0.02)) for _ in range(10)])
    for s in (pair.a, pair.b):
        today, month = await s.spent(WS, "2026-12-02", "2026-12")
        assert (today.tokens, round(today.cost, 8)) == (120, 0.3)
        assert (month.tokens, round(month.cost, 8)) == (120, 0.3)


async def test_running_counts_the_workspace_running_instances_only(pair: Pair) -> None:
    rows = [
        ("i1", WS, "running"),
        ("i2", WS, "running"),
        ("i3", WS, "completed"),
        ("i4", "other", "running"),
    ]
    async with pair.engine.begin() as conn:
        for iid, ws, status in rows:
            await conn.execute(
                sa.insert(instances).values(
                    id=iid,
                    workspace_id=ws,
                    process_id="p",
                    version=1,
                    status=status,
                    inputs={},
                    created_at=1.0,
                    updated_at=1.0,
                    seq=1,
                )
            )
    assert await pair.b.running(WS) == 2
    assert await pair.a.running("other") == 1
