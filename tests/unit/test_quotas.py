"""Workspace quotas (``application.quotas``) over the in-memory store with a fake clock: starts
refused past the running and per-minute limits, model turns refused before the call when
their reservation does not fit, and their real usage counted after."""

from __future__ import annotations

import pytest

from cadenza.application.ports_ai import ChatMessage, ChatRequest, ChatResponse, TokenSink, Usage
from cadenza.application.ports_nodes import NodeFailure
from cadenza.application.ports_quotas import QuotaLimits, Reservation, Spend
from cadenza.application.providers import Price, Providers
from cadenza.application.quotas import QuotaExceeded, Quotas
from cadenza.infrastructure.quotas_memory import MemoryQuotaStore

WS = "team-a"
NOON = 1_764_676_800.0  # 2025-12-02T12:00:00Z, the start of a minute


class FakeClock:
    def __init__(self, now: float = NOON) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


class Running:
    def __init__(self) -> None:
        self.n = 0

    async def __call__(self, workspace_id: str) -> int:
        return self.n if workspace_id == WS else 0


def quotas(defaults: QuotaLimits | None = None, reserve: int = 100) -> Quotas:
    q = Quotas(MemoryQuotaStore(Running()), FakeClock(), defaults or QuotaLimits(), reserve)
    q.on_refusal = lambda kind: refusals.append(kind)
    return q


refusals: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    refusals.clear()


async def _start(q: Quotas) -> None:
    async with q.admit_start(WS):
        pass


async def test_own_limits_override_the_defaults_field_by_field() -> None:
    q = quotas(QuotaLimits(max_running=5, tokens_per_day=1000))
    await q.store.set_limits(WS, QuotaLimits(tokens_per_day=50, cost_per_month=2.0), NOON)
    assert await q.limits(WS) == QuotaLimits(max_running=5, tokens_per_day=50, cost_per_month=2.0)
    assert await q.limits("other") == QuotaLimits(max_running=5, tokens_per_day=1000)


async def test_starts_past_the_minute_limit_are_refused_until_the_next_minute() -> None:
    q = quotas(QuotaLimits(starts_per_minute=2))
    assert isinstance(q.clock, FakeClock)
    q.clock.t = NOON + 20.0
    await _start(q)
    await _start(q)
    with pytest.raises(QuotaExceeded) as refused:
        await _start(q)
    assert refused.value.kind == "starts"
    assert refused.value.retry_after_s == 40.0
    assert str(refused.value) == (
        "quota exceeded: workspace 'team-a' started 2 instance(s) this minute; its limit "
        "(starts_per_minute) is 2; retry in 40 s"
    )
    q.clock.t = NOON + 60.0
    await _start(q)
    assert refusals == ["starts"]
    assert (await q.usage(WS)).starts_this_minute == 1


async def test_a_start_past_the_running_limit_is_refused_and_takes_no_start_slot() -> None:
    q = quotas(QuotaLimits(max_running=2, starts_per_minute=10))
    assert isinstance(q.store, MemoryQuotaStore)
    running = Running()
    running.n = 2
    q.store._running = running
    with pytest.raises(QuotaExceeded) as refused:
        await _start(q)
    assert (refused.value.kind, refused.value.retry_after_s) == ("running", None)
    assert str(refused.value) == (
        "quota exceeded: workspace 'team-a' has 2 instance(s) running; its limit (max_running) is 2"
    )
    assert (await q.usage(WS)).starts_this_minute == 0
    running.n = 1
    await _start(q)
    assert refusals == ["running"]


async def test_a_turn_that_would_cross_the_token_budget_fails_without_retry() -> None:
    q = quotas(QuotaLimits(tokens_per_day=150))
    request = ChatRequest("m", (ChatMessage("user", "hi"),), max_tokens=60)
    held = await q.before_turn(WS, request, Price())
    assert held is not None
    await q.after_turn(WS, held, {"prompt_tokens": 30, "completion_tokens": 50})
    assert (await q.usage(WS)).today == Spend(80)
    assert await q.before_turn(WS, request, Price()) is not None  # 80 + 60 fits in 150
    with pytest.raises(NodeFailure) as refused:
        await q.before_turn(WS, request, Price())  # 140 + 60 does not
    assert not refused.value.retryable
    assert str(refused.value) == (
        "quota exceeded: workspace 'team-a' has used 140 of its tokens_per_day limit 150; "
        "this model turn reserves up to 60 more, so it was not started"
    )
    assert refusals == ["tokens"]


async def test_cost_reservation_prices_the_reserved_tokens_at_the_higher_price() -> None:
    q = quotas(QuotaLimits(cost_per_month=1.0), reserve=1000)
    request = ChatRequest("m", (ChatMessage("user", "hi"),))  # no max_tokens: reserve 1000
    price = Price(prompt=0.2, completion=0.6)
    held = await q.before_turn(WS, request, price)
    assert held is not None
    assert (held.tokens, held.cost) == (1000, 0.6)
    with pytest.raises(NodeFailure, match="cost_per_month limit 1; this model turn reserves"):
        await q.before_turn(WS, request, price)
    await q.release(held)
    assert (await q.usage(WS)).this_month == Spend(0, 0.0)
    assert refusals == ["cost"]


async def test_unlimited_turns_reserve_nothing_and_still_count_their_usage() -> None:
    q = quotas()
    request = ChatRequest("m", (ChatMessage("user", "hi"),))
    assert await q.before_turn(WS, request, Price()) is None
    await q.after_turn(WS, None, {"prompt_tokens": 3, "completion_tokens": 4, "cost": 0.5})
    usage = await q.usage(WS)
    assert (usage.day, usage.month) == ("2025-12-02", "2025-12")
    assert usage.today == usage.this_month == Spend(7, 0.5)


class CountingModel:
    name = "fake"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(ChatMessage("assistant", "ok"), Usage(5, 2), request.model, "stop", 0)

    async def list_models(self) -> list[str]:
        return []

    async def aclose(self) -> None:
        return None


async def test_providers_chat_meters_each_turn_and_never_sends_a_refused_one() -> None:
    q = quotas(QuotaLimits(tokens_per_day=30))
    model = CountingModel()
    providers = Providers({"fake": model}, "fake", budget=q)
    request = ChatRequest("m", (ChatMessage("user", "hi"),), max_tokens=20)
    await providers.chat(model, request, WS)
    assert (await q.usage(WS)).today == Spend(7)  # the reservation settled to the real usage
    await providers.chat(model, request, WS)  # 7 + 20 fits
    with pytest.raises(NodeFailure, match="tokens_per_day limit 30"):
        await providers.chat(model, request, WS)  # 14 + 20 does not
    assert len(model.requests) == 2
    assert (await q.usage(WS)).today == Spend(14)


class BrokenStore(MemoryQuotaStore):
    """The database is away for the budget checks or for the accounting."""

    def __init__(self, *, check: bool, count: bool) -> None:
        super().__init__(Running())
        self.check, self.count = check, count

    async def limits(self, workspace_id: str) -> QuotaLimits | None:
        if not self.check:
            raise OSError("database unavailable")
        return None

    async def add(self, r: Reservation) -> None:
        if not self.count:
            raise OSError("database unavailable")
        await super().add(r)


async def test_a_turn_whose_budget_cannot_be_checked_is_not_sent_and_may_retry() -> None:
    q = Quotas(BrokenStore(check=False, count=True), FakeClock(), QuotaLimits())
    model = CountingModel()
    providers = Providers({"fake": model}, "fake", budget=q)
    with pytest.raises(NodeFailure) as refused:
        await providers.chat(model, ChatRequest("m", (ChatMessage("user", "hi"),)), WS)
    assert refused.value.retryable
    assert str(refused.value) == (
        "the model budget of workspace 'team-a' could not be checked (OSError); the model "
        "turn was not started"
    )
    assert model.requests == []


async def test_an_answer_is_kept_when_its_usage_cannot_be_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    q = Quotas(BrokenStore(check=True, count=False), FakeClock(), QuotaLimits())
    model = CountingModel()
    providers = Providers({"fake": model}, "fake", budget=q)
    response = await providers.chat(model, ChatRequest("m", (ChatMessage("user", "hi"),)), WS)
    assert response.message.content == "ok"
    assert "model usage of workspace 'team-a' was not counted" in caplog.text
