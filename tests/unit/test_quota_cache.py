"""Quotas off the hot path (``application.quota_cache``): with no limit set, starts and model
turns read the store once per TTL and write the usage of unbudgeted turns in batches; a
``QuotasChanged`` message or a change through this process drops the cached limits at once,
and the TTL bounds a lost message (fake clock, counting store)."""

from __future__ import annotations

import asyncio

import pytest

from cadenza.application.invalidation import QUOTAS_CHANGED, Targets, apply
from cadenza.application.ports_ai import ChatMessage, ChatRequest
from cadenza.application.ports_bus import BusMessage
from cadenza.application.ports_quotas import QuotaLimits, Reservation, Spend
from cadenza.application.providers import Price
from cadenza.application.quota_cache import LimitsCache, UsageBatch
from cadenza.application.quotas import QuotaExceeded, Quotas
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.quotas_memory import MemoryQuotaStore

WS = "team-a"
NOON = 1_764_676_800.0
TTL = 5.0
TURN = ChatRequest("m", (ChatMessage("user", "hi"),))
USAGE: JSONObject = {"prompt_tokens": 3, "completion_tokens": 4, "cost": 0.25}


class FakeClock:
    def __init__(self) -> None:
        self.t = NOON

    def now(self) -> float:
        return self.t


class CountingStore(MemoryQuotaStore):
    """The in-memory store, counting reads of the limits and usage writes."""

    def __init__(self) -> None:
        async def running(workspace_id: str) -> int:
            return 0

        super().__init__(running)
        self.reads = 0
        self.writes: list[Reservation] = []
        self.failing = False

    async def limits(self, workspace_id: str) -> QuotaLimits | None:
        self.reads += 1
        return await super().limits(workspace_id)

    async def add(self, r: Reservation) -> None:
        if self.failing:
            raise ConnectionError("database away")
        self.writes.append(r)
        await super().add(r)


def quotas(store: CountingStore, clock: FakeClock, flush_s: float = 60.0) -> Quotas:
    return Quotas(store, clock, QuotaLimits(), limits_ttl_s=TTL, usage_flush_s=flush_s)


async def turn(q: Quotas) -> None:
    held = await q.before_turn(WS, TURN, Price())
    await q.after_turn(WS, held, USAGE)


async def test_without_limits_starts_and_turns_read_once_per_ttl_and_write_nothing() -> None:
    store, clock = CountingStore(), FakeClock()
    q = quotas(store, clock)
    for _ in range(10):
        async with q.admit_start(WS):
            pass
        await turn(q)
    assert (store.reads, store.writes) == (1, [])  # one read, the usage still in the batch
    clock.t += TTL
    await turn(q)
    assert store.reads == 2
    await q.aclose()
    assert store.writes == [Reservation(WS, "2025-12-02", "2025-12", 77, 2.75)]
    assert (await q.usage(WS)).today == Spend(77, 2.75)


async def test_a_change_through_this_process_applies_at_once() -> None:
    store, clock = CountingStore(), FakeClock()
    q = quotas(store, clock)
    async with q.admit_start(WS):
        pass
    await q.set_limits(WS, QuotaLimits(starts_per_minute=0))
    with pytest.raises(QuotaExceeded):
        async with q.admit_start(WS):
            pass
    await q.aclose()


async def test_a_change_elsewhere_applies_on_its_message_or_after_the_ttl() -> None:
    store, clock = CountingStore(), FakeClock()
    q = quotas(store, clock)
    announced: list[str] = []

    async def announce(workspace_id: str) -> None:
        announced.append(workspace_id)

    other = quotas(store, clock)  # another process on the same database
    other.announce = announce
    assert (await q.limits(WS)).tokens_per_day is None
    await other.set_limits(WS, QuotaLimits(tokens_per_day=10))
    assert announced == [WS]
    assert (await q.limits(WS)).tokens_per_day is None  # cached, no message yet
    targets = Targets(lambda: None, lambda ws, pid: None, q.forget_all, q.forget)
    apply(BusMessage(QUOTAS_CHANGED, "", WS, 0, NOON), targets)
    assert (await q.limits(WS)).tokens_per_day == 10
    await other.set_limits(WS, QuotaLimits(tokens_per_day=20))  # this message is lost
    assert (await q.limits(WS)).tokens_per_day == 10
    clock.t += TTL
    assert (await q.limits(WS)).tokens_per_day == 20
    for each in (q, other):
        await each.aclose()


async def test_a_read_begun_before_a_forget_is_not_kept() -> None:
    gate, values = asyncio.Event(), iter([QuotaLimits(), QuotaLimits(max_running=1)])

    async def load(workspace_id: str) -> QuotaLimits:
        await gate.wait()
        return next(values)

    cache = LimitsCache(load, lambda: NOON, TTL)
    slow = asyncio.create_task(cache.get(WS))
    await asyncio.sleep(0)  # the read is under way
    cache.forget(WS)
    gate.set()
    assert await slow == QuotaLimits()
    assert await cache.get(WS) == QuotaLimits(max_running=1)  # read again, not the old one


async def test_turns_under_a_budget_are_reserved_and_settled_at_once() -> None:
    store, clock = CountingStore(), FakeClock()
    q = quotas(store, clock)
    await q.set_limits(WS, QuotaLimits(tokens_per_day=10_000))
    await turn(q)
    assert q.unbudgeted.pending == 0
    assert (await store.spent(WS, "2025-12-02", "2025-12"))[0].tokens == 7
    await q.aclose()


async def test_a_failed_flush_keeps_the_sums_for_the_next() -> None:
    store = CountingStore()
    batch = UsageBatch(store.add, 60.0)
    await batch.add(Reservation(WS, "d", "m", 5, 0.5))
    await batch.add(Reservation(WS, "d", "m", 2, 0.25))
    store.failing = True
    await batch.flush()
    assert batch.pending == 1
    store.failing = False
    await batch.aclose()
    assert store.writes == [Reservation(WS, "d", "m", 7, 0.75)]


async def test_the_batch_writes_by_itself_after_flush_s() -> None:
    slept, release, both = asyncio.Event(), asyncio.Event(), asyncio.Event()
    written: list[str] = []

    async def sleep(_: float) -> None:
        slept.set()
        await release.wait()

    async def write(r: Reservation) -> None:
        written.append(r.workspace_id)
        if len(written) == 2:
            both.set()

    batch = UsageBatch(write, 1.0, sleep)
    await batch.add(Reservation(WS, "d", "m", 1, 0.0))
    await batch.add(Reservation("other", "d", "m", 2, 0.0))
    await slept.wait()
    assert written == []
    release.set()
    await asyncio.wait_for(both.wait(), 5.0)  # one flush task, after its pause
    assert sorted(written) == ["other", WS]
    assert batch.pending == 0
    await batch.aclose()


async def test_flush_s_zero_writes_each_turn() -> None:
    store = CountingStore()
    batch = UsageBatch(store.add, 0.0)
    await batch.add(Reservation(WS, "d", "m", 1, 0.0))
    assert len(store.writes) == 1
    assert batch.pending == 0
