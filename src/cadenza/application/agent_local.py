"""What this process keeps of the agents in memory: their load, and a recent copy of the list.

The load (calls in flight, response times, heartbeats heard) changes on every call and only
matters to the process making the calls, so it stays here beside the shared definitions
(``agent_definitions.AgentRepository``): an agent as the registry hands it out is its stored
definition with this load laid over it, and what is stored never carries a load
(``definition``). Selection reads the list of agents many times a second, so it reads a copy
at most ``refresh_s`` old (``AgentList``) that any change this process hears of drops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from cadenza.application.agent_snapshots import AgentSnapshots
from cadenza.application.ports import Clock
from cadenza.domain.agent import Agent

_EWMA = 0.2  # weight of the newest response time in the moving average


@dataclass
class _Load:
    outstanding: int = 0
    response_ms: float | None = None
    heard_at: float | None = None  # last heartbeat received by this process


class AgentLoads:
    """The load of every agent this process has called or heard from."""

    def __init__(self) -> None:
        self._load: dict[str, _Load] = {}

    def forget(self, agent_id: str) -> None:
        """The agent is gone (deregistered)."""
        self._load.pop(agent_id, None)

    def heard(self, agent_id: str, at: float) -> None:
        """A heartbeat of the agent arrived at ``at``."""
        self._load.setdefault(agent_id, _Load()).heard_at = at

    def started(self, agent_id: str) -> None:
        """One more call in flight on the agent."""
        self._load.setdefault(agent_id, _Load()).outstanding += 1

    def finished(self, agent_id: str, ok: bool, response_ms: float | None) -> bool:
        """A call is over; False when this process never counted one on the agent."""
        load = self._load.get(agent_id)
        if load is None:
            return False
        load.outstanding = max(0, load.outstanding - 1)
        # Failures do not count: a broken agent failing fast must not look like a fast one.
        if ok and response_ms is not None:
            old = load.response_ms
            load.response_ms = response_ms if old is None else old + _EWMA * (response_ms - old)
        return True

    def applied(self, agent: Agent) -> Agent:
        """``agent`` with this process's load (and the newest heartbeat it heard)."""
        load = self._load.get(agent.id)
        if load is None:
            return agent
        seen = agent.last_seen
        if load.heard_at is not None and (seen is None or load.heard_at > seen):
            seen = load.heard_at
        return dataclasses.replace(
            agent, outstanding=load.outstanding, response_ms=load.response_ms, last_seen=seen
        )


def definition(agent: Agent) -> Agent:
    """``agent`` without this process's load, as repositories keep it."""
    return dataclasses.replace(agent, outstanding=0, response_ms=None)


class AgentList:
    """The list of agents selection reads: kept ``refresh_s`` (how stale it may get when
    another process changes an agent), dropped by ``invalidate``, read through the shared
    snapshot when there is one, else from the repository."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[list[Agent]]],
        clock: Clock,
        refresh_s: float,
        snapshots: AgentSnapshots | None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._refresh_s = refresh_s
        self._snapshots = snapshots
        self._cache: tuple[float, list[Agent]] | None = None
        self._generation = 0  # bumped by every invalidation: a slower read is not kept

    def invalidate(self) -> None:
        self._cache = None
        self._generation += 1

    async def current(self) -> Sequence[Agent]:
        now = self._clock.now()
        if self._cache is not None and now - self._cache[0] < self._refresh_s:
            return self._cache[1]
        generation = self._generation
        if self._snapshots is not None:
            agents = await self._snapshots.load(self._fetch)
        else:
            agents = await self._fetch()
        if generation == self._generation:  # no invalidation while reading: keep it
            self._cache = (now, agents)
        return agents
