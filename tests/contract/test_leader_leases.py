"""The LeaderLeases port's contract, and the leadership built on it (``application.leadership``)
with a fake clock, on every adapter: memory (the reference), a SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.pg import STORES, backend_url

from cadenza.application.leadership import Leadership
from cadenza.application.ports_leases import LeaderLeases, LeaseView
from cadenza.infrastructure.leases_memory import MemoryLeaderLeases
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.leaders import SqlLeaderLeases

NAME = "agent-health"
L = 3.0  # lease_s of the leadership tests: a tick (renewal, retry) is 1.0


@pytest.fixture(params=STORES)
async def leases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LeaderLeases]:
    url = backend_url(request, tmp_path)
    if url == "memory://":
        yield MemoryLeaderLeases()
        return
    await asyncio.to_thread(upgrade, url)
    engine: AsyncEngine = create_engine(url)
    try:
        yield SqlLeaderLeases(engine)
    finally:
        await engine.dispose()


# ---- the port ----------------------------------------------------------------------------
async def test_first_caller_takes_a_free_lease_and_the_next_sees_its_holder(
    leases: LeaderLeases,
) -> None:
    assert await leases.try_acquire(NAME, "a", 100.0, 15.0) == LeaseView(NAME, "a", 115.0, 100.0)
    assert await leases.try_acquire(NAME, "b", 101.0, 15.0) == LeaseView(NAME, "a", 115.0, 100.0)


async def test_holder_acquiring_again_extends_its_lease_and_keeps_its_start(
    leases: LeaderLeases,
) -> None:
    await leases.try_acquire(NAME, "a", 100.0, 15.0)
    assert await leases.try_acquire(NAME, "a", 105.0, 15.0) == LeaseView(NAME, "a", 120.0, 100.0)


async def test_lease_is_free_for_another_caller_from_its_expiry(leases: LeaderLeases) -> None:
    await leases.try_acquire(NAME, "a", 100.0, 15.0)
    assert await leases.try_acquire(NAME, "b", 114.99, 15.0) == LeaseView(NAME, "a", 115.0, 100.0)
    assert await leases.try_acquire(NAME, "b", 115.0, 15.0) == LeaseView(NAME, "b", 130.0, 115.0)
    # the former holder, back after its lease lapsed, is a standby now
    assert await leases.try_acquire(NAME, "a", 116.0, 15.0) == LeaseView(NAME, "b", 130.0, 115.0)


async def test_renew_extends_only_a_lease_still_held(leases: LeaderLeases) -> None:
    await leases.try_acquire(NAME, "a", 100.0, 15.0)
    assert await leases.renew(NAME, "a", 110.0, 15.0) is True
    assert await leases.renew(NAME, "b", 110.0, 15.0) is False
    assert await leases.try_acquire(NAME, "b", 111.0, 15.0) == LeaseView(NAME, "a", 125.0, 100.0)
    # lapsed, even though nobody took it: the holder must acquire it afresh
    assert await leases.renew(NAME, "a", 125.0, 15.0) is False
    assert await leases.renew("no-such-lease", "a", 100.0, 15.0) is False


async def test_a_reacquired_lapsed_lease_starts_afresh(leases: LeaderLeases) -> None:
    await leases.try_acquire(NAME, "a", 100.0, 15.0)
    assert await leases.try_acquire(NAME, "a", 130.0, 15.0) == LeaseView(NAME, "a", 145.0, 130.0)


async def test_release_frees_the_lease_at_once_and_only_by_its_holder(
    leases: LeaderLeases,
) -> None:
    await leases.try_acquire(NAME, "a", 100.0, 15.0)
    await leases.release(NAME, "b")
    assert (await leases.try_acquire(NAME, "b", 101.0, 15.0)).holder == "a"
    await leases.release(NAME, "a")
    assert await leases.try_acquire(NAME, "b", 101.0, 15.0) == LeaseView(NAME, "b", 116.0, 101.0)
    assert await leases.renew(NAME, "a", 102.0, 15.0) is False


async def test_leases_of_different_names_are_independent(leases: LeaderLeases) -> None:
    await leases.try_acquire(NAME, "a", 100.0, 15.0)
    assert (await leases.try_acquire("other", "b", 100.0, 15.0)).holder == "b"


@pytest.mark.parametrize("expired", [False, True], ids=["first-lease", "expired-lease"])
async def test_of_callers_racing_for_a_free_lease_exactly_one_gets_it(
    leases: LeaderLeases, expired: bool
) -> None:
    if expired:
        await leases.try_acquire(NAME, "old", 0.0, 15.0)
    holders = [f"h{i}" for i in range(8)]
    views = await asyncio.gather(*(leases.try_acquire(NAME, h, 100.0, 15.0) for h in holders))
    winners = [h for h, v in zip(holders, views, strict=True) if v.held_by(h, 100.0)]
    assert len(winners) == 1
    assert {v.holder for v in views} == set(winners)


# ---- leadership, with a fake clock --------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class Duty:
    """Records when it ran; runs until cancelled."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.started: list[float] = []
        self.stopped: list[float] = []

    async def __call__(self) -> None:
        self.started.append(self.clock.t)
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped.append(self.clock.t)


class Flaky:
    """Leases whose renewals fail (the store away) while ``down``."""

    def __init__(self, inner: LeaderLeases) -> None:
        self.inner = inner
        self.down = False

    async def try_acquire(self, name: str, holder: str, now: float, lease_s: float) -> LeaseView:
        return await self.inner.try_acquire(name, holder, now, lease_s)

    async def renew(self, name: str, holder: str, now: float, lease_s: float) -> bool:
        if self.down:
            raise ConnectionError("the store is away")
        return await self.inner.renew(name, holder, now, lease_s)

    async def release(self, name: str, holder: str) -> None:
        await self.inner.release(name, holder)


def _pair(
    leases: LeaderLeases, clock: FakeClock, a_leases: LeaderLeases | None = None
) -> tuple[Leadership, Duty, Leadership, Duty]:
    da, db = Duty(clock), Duty(clock)
    a = Leadership(a_leases or leases, NAME, "a", clock, L, da)
    b = Leadership(leases, NAME, "b", clock, L, db)
    return a, da, b, db


async def _step(leadership: Leadership) -> float:
    """One step, then let the duty it started (or cancelled) run its first (or last) lines."""
    wait = await leadership.step()
    await _settle()
    return wait


async def _settle() -> None:
    """Let a just-created or just-cancelled duty task run its first (or last) lines."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_one_process_runs_the_duty_while_the_other_stands_by(leases: LeaderLeases) -> None:
    clock = FakeClock()
    a, da, b, db = _pair(leases, clock)
    try:
        assert await _step(a) == 1.0
        assert await _step(b) == 1.0  # min(a tick, time left of a's lease)
        assert (a.leader, b.leader, da.started, db.started) == (True, False, [1000.0], [])
        for _ in range(6):  # a renews every tick, b retries every tick: nothing changes
            clock.t += 1.0
            await _step(a)
            await _step(b)
        assert (a.leader, b.leader) == (True, False)
        assert b.seen == LeaseView(NAME, "a", 1009.0, 1000.0)
    finally:
        await a.stop()
        await b.stop()


async def test_standby_takes_over_within_one_lease_period_of_the_holders_death(
    leases: LeaderLeases,
) -> None:
    clock = FakeClock()
    a, _, b, db = _pair(leases, clock)
    try:
        await _step(a)
        clock.t += 0.5
        wait = await _step(b)
        clock.t += 0.5
        await _step(a)  # a's last renewal: its lease now ends at 1004.0
        died_at = clock.t
        assert b.seen is not None
        while not b.leader:  # b alone steps on, at the times it asks for
            assert clock.t <= died_at + L, "the standby did not take over in time"
            clock.t += wait
            wait = await _step(b)
        assert db.started == [1004.0]  # the moment a's lease ended: died_at + L
        assert db.started[0] <= died_at + L
    finally:
        await b.stop()
        await a.stop()  # ends the dead one's duty task; the lease is b's, so it stays b's


async def test_holder_that_cannot_renew_stops_before_its_lease_ends(leases: LeaderLeases) -> None:
    clock = FakeClock()
    flaky = Flaky(leases)
    a, da, b, db = _pair(leases, clock, a_leases=flaky)
    try:
        await _step(a)  # leader until 1003.0
        flaky.down = True
        clock.t = 1001.0
        await _step(a)  # 2.0 of its lease left: more than a tick, it keeps the duty
        assert a.leader
        clock.t = 1002.0
        await _step(a)  # a tick left: it stops
        assert (a.leader, da.stopped) == (False, [1002.0])
        clock.t = 1002.5
        await _step(b)  # the lease still runs: nobody else may run the duty yet
        assert not b.leader
        clock.t = 1003.0
        await _step(b)
        assert db.started == [1003.0]
        assert da.stopped[0] < db.started[0]  # never both at once
    finally:
        await a.stop()
        await b.stop()


async def test_holder_whose_lease_was_taken_stops_at_once(leases: LeaderLeases) -> None:
    clock = FakeClock()
    a, da, b, db = _pair(leases, clock)
    try:
        await _step(a)
        await leases.release(NAME, "a")  # e.g. an operator freed it
        clock.t += 0.5
        await _step(b)
        clock.t += 0.5
        await _step(a)
        assert (a.leader, b.leader, da.stopped, db.started) == (False, True, [1001.0], [1000.5])
    finally:
        await a.stop()
        await b.stop()


async def test_stopping_releases_the_lease_for_the_standbys_next_attempt(
    leases: LeaderLeases,
) -> None:
    clock = FakeClock()
    a, da, b, _ = _pair(leases, clock)
    try:
        await _step(a)
        await a.stop()
        assert (a.leader, da.stopped) == (False, [1000.0])
        clock.t += 0.01
        await _step(b)
        assert b.leader
    finally:
        await b.stop()


async def test_a_duty_that_ends_on_its_own_runs_again_while_the_lease_is_held(
    leases: LeaderLeases,
) -> None:
    clock = FakeClock()
    runs: list[float] = []

    async def short_duty() -> None:
        runs.append(clock.t)

    a = Leadership(leases, NAME, "a", clock, L, short_duty)
    try:
        await _step(a)
        clock.t += 1.0
        await _step(a)
        assert runs == [1000.0, 1001.0]
    finally:
        await a.stop()
