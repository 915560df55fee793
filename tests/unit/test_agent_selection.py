"""Agent matching and load balancing (pure domain), and the registry on the memory repository."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from cadenza.application.agent_definitions import AgentConflict, AgentError
from cadenza.application.agents import AgentRegistry
from cadenza.domain.agent import (
    TRANSITIONS,
    Agent,
    AgentEvent,
    AgentStatus,
    AgentStatusChanged,
    AgentType,
    LeastOutstanding,
    RoundRobin,
    Weighted,
    candidates,
    transition,
    unavailable_reason,
)
from cadenza.domain.errors import InvalidTransition
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.agents_memory import MemoryAgentRepository


def agent(
    id: str,
    caps: tuple[str, ...] = ("summarize",),
    *,
    status: AgentStatus = AgentStatus.HEALTHY,
    outstanding: int = 0,
    capacity: int = 4,
    weight: int = 1,
    type: AgentType = AgentType.HTTP,
) -> Agent:
    return Agent(
        id,
        f"agent-{id}",
        type,
        frozenset(caps),
        {},
        capacity,
        weight,
        status,
        outstanding,
    )


# ---- matching ------------------------------------------------------------------------------
def test_capabilities_must_cover_every_requirement() -> None:
    agents = [agent("a", ("summarize",)), agent("b", ("summarize", "translate")), agent("c", ())]
    assert [a.id for a in candidates(agents, ["summarize", "translate"])] == ["b"]
    assert [a.id for a in candidates(agents, ["summarize"])] == ["a", "b"]
    assert [a.id for a in candidates(agents, [])] == ["a", "b", "c"]


def test_unhealthy_draining_unknown_and_full_agents_are_excluded() -> None:
    agents = [
        agent("ok"),
        agent("sick", status=AgentStatus.UNHEALTHY),
        agent("leaving", status=AgentStatus.DRAINING),
        agent("new", status=AgentStatus.UNKNOWN),
        agent("full", outstanding=2, capacity=2),
    ]
    assert [a.id for a in candidates(agents, ["summarize"])] == ["ok"]


def test_type_filter_and_reasons_say_why_an_agent_is_out() -> None:
    llm = agent("l", type=AgentType.LLM)
    assert candidates([llm], ["summarize"], AgentType.HTTP) == []
    assert unavailable_reason(llm, ["summarize"], AgentType.HTTP) == "type llm, not http"
    assert unavailable_reason(llm, ["x", "summarize", "a"]) == "lacks [a, x]"
    assert unavailable_reason(agent("f", outstanding=1, capacity=1), []) == "at capacity 1/1"
    assert unavailable_reason(agent("u", status=AgentStatus.UNHEALTHY), []) == "unhealthy"
    assert unavailable_reason(llm, ["summarize"]) is None


# ---- strategies ----------------------------------------------------------------------------
def test_least_outstanding_prefers_the_least_loaded_relative_to_capacity() -> None:
    busy, idle = agent("a", outstanding=3, capacity=4), agent("b", outstanding=1, capacity=4)
    assert LeastOutstanding().pick([busy, idle]) == idle
    big = agent("c", outstanding=2, capacity=10)  # 20 % loaded beats 25 %
    assert LeastOutstanding().pick([idle, big]) == big
    assert LeastOutstanding().pick([agent("y"), agent("x")]) == agent("x")  # ties: lower id
    assert LeastOutstanding().pick([]) is None


def test_round_robin_takes_each_candidate_in_turn() -> None:
    rr = RoundRobin()
    agents = candidates([agent("c"), agent("a"), agent("b")], [])
    picks = [rr.pick(agents) for _ in range(6)]
    assert [p.id for p in picks if p] == ["a", "b", "c", "a", "b", "c"]
    assert RoundRobin().pick([]) is None


def test_weighted_distribution_over_100_picks_follows_the_weights() -> None:
    agents = [agent("a", weight=5), agent("b", weight=3), agent("c", weight=2)]
    strategy = Weighted()
    picks = [strategy.pick(agents) for _ in range(100)]
    counts = Counter(p.id for p in picks if p)
    assert counts == {"a": 50, "b": 30, "c": 20}


def test_weighted_is_smooth_and_deterministic() -> None:
    agents = [agent("a", weight=5), agent("b", weight=1), agent("c", weight=1)]

    def seven_picks() -> list[str]:
        strategy = Weighted()
        return [p.id for p in (strategy.pick(agents) for _ in range(7)) if p]

    assert seven_picks() == seven_picks() == ["a", "a", "b", "a", "c", "a", "a"]  # nginx's


# ---- lifecycle -----------------------------------------------------------------------------
def test_transition_table_allows_only_listed_moves() -> None:
    assert transition(AgentStatus.UNKNOWN, AgentStatus.HEALTHY) is AgentStatus.HEALTHY
    assert transition(AgentStatus.HEALTHY, AgentStatus.UNHEALTHY) is AgentStatus.UNHEALTHY
    assert transition(AgentStatus.UNHEALTHY, AgentStatus.HEALTHY) is AgentStatus.HEALTHY
    assert transition(AgentStatus.DRAINING, AgentStatus.UNKNOWN) is AgentStatus.UNKNOWN
    with pytest.raises(InvalidTransition):
        transition(AgentStatus.DRAINING, AgentStatus.HEALTHY)  # health checks never undo a drain
    with pytest.raises(InvalidTransition):
        transition(AgentStatus.HEALTHY, AgentStatus.UNKNOWN)
    assert set(TRANSITIONS) == set(AgentStatus)
    for status, targets in TRANSITIONS.items():
        assert status not in targets


# ---- the registry on the memory repository -------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


def registry() -> AgentRegistry:
    counter = itertools.count(1)
    return AgentRegistry(MemoryAgentRepository(), FakeClock(), lambda: f"id{next(counter)}")


@pytest.mark.parametrize(
    ("name", "type", "config", "capacity", "message"),
    [
        ("Bad Name", AgentType.WORKER, {}, 1, "slug"),
        ("w", AgentType.WORKER, {}, 0, "capacity"),
        ("l", AgentType.LLM, {"provider": "offline"}, 1, r"missing \[model\]"),
        ("m", AgentType.MCP, {"server": "s", "cmd": "x"}, 1, r"unknown \[cmd\]"),
        ("h", AgentType.HTTP, {"url": "file:///etc/passwd"}, 1, "http"),
        ("w", AgentType.WORKER, {"url": "http://x"}, 1, "unknown"),
    ],
)
async def test_register_validates_name_capacity_and_type_specific_config(
    name: str, type: AgentType, config: JSONObject, capacity: int, message: str
) -> None:
    with pytest.raises(AgentError, match=message):
        await registry().register(name, type, ["x"], config, capacity)


async def test_acquire_counts_outstanding_and_release_frees_capacity() -> None:
    reg = registry()
    seen: list[AgentEvent] = []
    reg.subscribe(seen.append)
    a = await reg.register("one", AgentType.WORKER, ["x"], {}, capacity=1)
    assert await reg.acquire(["x"], LeastOutstanding()) is None  # unknown until checked
    await reg.set_status(a.id, AgentStatus.HEALTHY)
    got = await reg.acquire(["x"], LeastOutstanding())
    assert got is not None
    assert got.outstanding == 1
    assert await reg.acquire(["x"], LeastOutstanding()) is None  # at capacity
    reg.release(a.id, ok=True, response_ms=12.0)
    again = await reg.acquire(["x"], LeastOutstanding())
    assert again is not None
    assert again.response_ms == 12.0
    assert isinstance(seen[-1], AgentStatusChanged)
    assert seen[-1].status is AgentStatus.HEALTHY
    with pytest.raises(AgentConflict):
        await reg.register("one", AgentType.WORKER, [], {})


async def test_drained_agents_are_not_selected_and_health_cannot_undo_it() -> None:
    reg = registry()
    a = await reg.register("one", AgentType.WORKER, [], {})
    await reg.set_status(a.id, AgentStatus.HEALTHY)
    await reg.drain(a.id)
    assert await reg.acquire([], RoundRobin()) is None
    with pytest.raises(InvalidTransition):
        await reg.set_status(a.id, AgentStatus.HEALTHY)
    await reg.resume(a.id)
    assert (await reg.heartbeat(a.id)).status is AgentStatus.HEALTHY
