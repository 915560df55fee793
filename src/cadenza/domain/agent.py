"""Agents: registered executors with capabilities, their lifecycle, matching and load balancing.

Everything here is pure: the registry (``application.agents``) passes in the agents it knows,
with their outstanding counts, and the strategies only decide which one to use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol

from cadenza.domain.errors import InvalidTransition
from cadenza.domain.json import JSONObject


class AgentType(StrEnum):
    LLM = "llm"  # a model behind a configured provider
    MCP = "mcp"  # a tool (or a server's tools) behind the MCP gateway
    HTTP = "http"  # a remote endpoint taking POST {input, idempotency_key}
    WORKER = "worker"  # an external process that long-polls for assignments


class AgentStatus(StrEnum):
    """The health of an agent."""

    UNKNOWN = "unknown"  # registered, not checked yet: not selected until a check passes
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"  # finishes what it has, takes nothing new


_S = AgentStatus
TRANSITIONS: Mapping[AgentStatus, frozenset[AgentStatus]] = {
    _S.UNKNOWN: frozenset({_S.HEALTHY, _S.UNHEALTHY, _S.DRAINING}),
    _S.HEALTHY: frozenset({_S.UNHEALTHY, _S.DRAINING}),
    _S.UNHEALTHY: frozenset({_S.HEALTHY, _S.DRAINING}),
    # Health checks never undo a drain; putting an agent back means an explicit reset to
    # unknown, after which the next check decides.
    _S.DRAINING: frozenset({_S.UNKNOWN}),
}


def transition(current: AgentStatus, new: AgentStatus) -> AgentStatus:
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"agent cannot go from {current} to {new}")
    return new


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    type: AgentType
    capabilities: frozenset[str]
    config: JSONObject
    capacity: int
    weight: int = 1
    status: AgentStatus = AgentStatus.UNKNOWN
    outstanding: int = 0  # calls dispatched and not yet released
    last_seen: float | None = None  # last heartbeat (workers) or passing check
    response_ms: float | None = None  # moving average of recent calls
    workspace_id: str | None = None  # the owning tenant; None: shared by every workspace


def unavailable_reason(
    agent: Agent,
    requires: Iterable[str],
    type: AgentType | None = None,
    workspace: str | None = None,
) -> str | None:
    """Why ``agent`` cannot take a task (of ``workspace``) needing ``requires`` now, or None
    when it can."""
    if workspace is not None and agent.workspace_id not in (None, workspace):
        return "belongs to another workspace"
    if type is not None and agent.type is not type:
        return f"type {agent.type}, not {type}"
    missing = sorted(set(requires) - agent.capabilities)
    if missing:
        return f"lacks [{', '.join(missing)}]"
    if agent.status is not AgentStatus.HEALTHY:
        return str(agent.status)
    if agent.outstanding >= agent.capacity:
        return f"at capacity {agent.outstanding}/{agent.capacity}"
    return None


def candidates(
    agents: Iterable[Agent],
    requires: Iterable[str],
    type: AgentType | None = None,
    workspace: str | None = None,
) -> list[Agent]:
    """Healthy agents (of ``type``, usable by ``workspace``) with capabilities covering
    ``requires`` and spare capacity, in id order so that every strategy is deterministic."""
    needed = frozenset(requires)
    return sorted(
        (a for a in agents if unavailable_reason(a, needed, type, workspace) is None),
        key=lambda a: a.id,
    )


class Strategy(Protocol):
    name: ClassVar[str]

    def pick(self, candidates: Sequence[Agent]) -> Agent | None:
        """One of ``candidates`` (None only when there are none)."""
        ...


class LeastOutstanding:
    """Fewest calls in flight relative to capacity; ties go to the faster, then the lower id."""

    name: ClassVar[str] = "least_outstanding"

    def pick(self, candidates: Sequence[Agent]) -> Agent | None:
        if not candidates:
            return None
        return min(
            candidates,
            key=lambda a: (a.outstanding / a.capacity, a.response_ms or 0.0, a.id),
        )


@dataclass
class RoundRobin:
    """Each candidate in turn; the counter is the only state."""

    name: ClassVar[str] = "round_robin"
    counter: int = 0

    def pick(self, candidates: Sequence[Agent]) -> Agent | None:
        if not candidates:
            return None
        chosen = candidates[self.counter % len(candidates)]
        self.counter += 1
        return chosen


@dataclass
class Weighted:
    """Smooth weighted round robin (nginx): over ``sum(weights)`` picks each agent is chosen
    ``weight`` times, interleaved rather than in bursts."""

    name: ClassVar[str] = "weighted"
    current: dict[str, int] = field(default_factory=dict)

    def pick(self, candidates: Sequence[Agent]) -> Agent | None:
        if not candidates:
            return None
        total = 0
        for agent in candidates:
            self.current[agent.id] = self.current.get(agent.id, 0) + agent.weight
            total += agent.weight
        chosen = max(candidates, key=lambda a: self.current[a.id])  # first of equals wins
        self.current[chosen.id] -= total
        return chosen


STRATEGIES: tuple[str, ...] = (LeastOutstanding.name, RoundRobin.name, Weighted.name)


# ---- events ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AgentEvent:
    type_name: ClassVar[str] = "AgentEvent"
    event_id: str
    occurred_at: float
    agent_id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class AgentRegistered(AgentEvent):
    type_name: ClassVar[str] = "AgentRegistered"
    agent_type: AgentType
    capabilities: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AgentUpdated(AgentEvent):
    type_name: ClassVar[str] = "AgentUpdated"
    changed: tuple[str, ...]  # names of the fields that changed


@dataclass(frozen=True, kw_only=True)
class AgentDeregistered(AgentEvent):
    type_name: ClassVar[str] = "AgentDeregistered"


@dataclass(frozen=True, kw_only=True)
class AgentStatusChanged(AgentEvent):
    type_name: ClassVar[str] = "AgentStatusChanged"
    previous: AgentStatus
    status: AgentStatus
    reason: str = ""
