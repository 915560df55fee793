"""The agent registry: register, update, drain and deregister agents; acquire and release them.

Definitions live in an ``AgentRepository`` (shared by every process on SQL); the load of each
agent (calls in flight, response times) is this process's own and stays in memory, since it
changes on every call and only matters to the process making the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from cadenza.application.agent_snapshots import AgentSnapshots
from cadenza.application.ports import Clock, IdGenerator
from cadenza.domain import agent as ag
from cadenza.domain.agent import Agent, AgentEvent, AgentStatus, AgentType, Strategy
from cadenza.domain.json import JSONObject

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CONFIG_KEYS: dict[AgentType, tuple[frozenset[str], frozenset[str]]] = {  # (required, optional)
    AgentType.LLM: (frozenset({"provider", "model"}), frozenset()),
    AgentType.MCP: (frozenset({"server"}), frozenset({"tool"})),
    AgentType.HTTP: (frozenset({"url"}), frozenset({"health_url"})),
    AgentType.WORKER: (frozenset(), frozenset()),
}
_HEARTBEAT_WRITE_S = 5.0  # a heartbeat younger than this is not written again
_EWMA = 0.2  # weight of the newest response time in the moving average


class AgentError(ValueError):
    """A registration or update is invalid; the message says why."""


class AgentNotFound(LookupError):
    pass


class AgentConflict(AgentError):
    """Another agent already has this name."""


def name_taken(new: Agent, other: Agent) -> bool:
    """Whether ``other`` keeps ``new`` from having its name.

    Names are unique within what one workspace sees: its own agents and the shared ones.
    A workspace agent cannot take the name of another agent of its workspace or of a shared
    agent (shared agents are listed in every workspace, so the 409 reveals nothing); a
    shared agent cannot take the name of another shared agent. Agents of other workspaces
    never clash, so a 409 tells nothing about them. A shared agent registered after a
    workspace agent of the same name is allowed: that workspace lists both, told apart by
    ``shared`` and id (nothing resolves an agent by name: nodes select by capabilities).
    """
    if new.name != other.name or new.id == other.id:
        return False
    return other.workspace_id == new.workspace_id or other.workspace_id is None


def conflict(agent: Agent) -> AgentConflict:
    """The error for ``agent`` whose name is taken."""
    who = "a shared agent" if agent.workspace_id is None else "an agent of this workspace"
    if agent.workspace_id is not None:
        who += " or a shared agent"
    return AgentConflict(f"{who} is already named {agent.name!r}")


class AgentRepository(Protocol):
    """Where agent definitions and statuses are kept (the load is not: see the module doc)."""

    async def add(self, agent: Agent) -> None:
        """Raises AgentConflict when the name is taken (``name_taken``)."""
        ...

    async def update(self, agent: Agent) -> None: ...

    async def remove(self, agent_id: str) -> None: ...

    async def get(self, agent_id: str) -> Agent | None: ...

    async def list(self) -> list[Agent]: ...


AgentListener = Callable[[AgentEvent], None]


@dataclass
class _Load:
    outstanding: int = 0
    response_ms: float | None = None
    heard_at: float | None = None  # last heartbeat received by this process


def validate(
    name: str, type: AgentType, capabilities: Iterable[str], config: JSONObject, capacity: int
) -> None:
    """Raise AgentError unless the fields make a valid agent of ``type``."""
    if not _NAME.match(name):
        raise AgentError(
            f"agent name {name!r} must be a slug: lower-case letters, digits, '-' or '_'"
        )
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise AgentError(f"agent capacity must be an integer >= 1, not {capacity!r}")
    if any(not isinstance(c, str) or not c for c in capabilities):
        raise AgentError("agent capabilities must be non-empty strings")
    required, optional = _CONFIG_KEYS[type]
    missing = sorted(required - config.keys())
    unknown = sorted(config.keys() - required - optional)
    if missing or unknown:
        allowed = ", ".join(sorted(required | optional)) or "nothing"
        raise AgentError(
            f"{type} agent config: missing [{', '.join(missing)}], unknown "
            f"[{', '.join(unknown)}] (accepts {allowed})"
        )
    for key, value in config.items():
        if not isinstance(value, str) or not value:
            raise AgentError(f"{type} agent config.{key} must be a non-empty string")
        if key.endswith("url") and urlsplit(value).scheme not in ("http", "https"):
            raise AgentError(f"{type} agent config.{key} must be an http(s) URL, not {value!r}")


class AgentRegistry:
    """The agents use case; subscribers hear every ``AgentEvent`` after it is stored."""

    def __init__(
        self,
        repository: AgentRepository,
        clock: Clock,
        new_id: IdGenerator,
        refresh_s: float = 1.0,
        snapshots: AgentSnapshots | None = None,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``snapshots``: the list shared through a cache (None: each process reads the
        table); ``announce``: tells other processes that the agents changed (the bus)."""
        self._repo = repository
        self._clock = clock
        self._new_id = new_id
        self._refresh_s = refresh_s  # how stale the cached list may get (other processes)
        self._cache: tuple[float, list[Agent]] | None = None
        self._generation = 0  # bumped by every invalidation: a slower read is not kept
        self._snapshots = snapshots
        self._announce = announce
        self._load: dict[str, _Load] = {}
        # status changes of one agent are serialized in this process: a health verdict and a
        # heartbeat must not interleave between reading the agent and writing its status
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[AgentListener] = []
        self._change = asyncio.Event()

    # ---- subscriptions -----------------------------------------------------------------------
    def subscribe(self, listener: AgentListener) -> Callable[[], None]:
        """Call ``listener`` with every event; returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def changed(self, timeout_s: float) -> None:
        """Return at the next change seen by this process (or after ``timeout_s``)."""
        event = self._change
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()

    def _notify(self, event: AgentEvent | None = None) -> None:
        self._change.set()
        self._change = asyncio.Event()
        if event is not None:
            self.invalidate()
            for listener in list(self._listeners):
                listener(event)

    def invalidate(self) -> None:
        """Forget the cached list: the next selection reads it again (another process
        changed an agent)."""
        self._cache = None
        self._generation += 1

    async def _changed(self) -> None:
        """After a change is stored: other processes drop their lists."""
        if self._snapshots is not None:
            await self._snapshots.changed()
        if self._announce is not None:
            await self._announce()

    def _stamp(self) -> tuple[str, float]:
        return self._new_id(), self._clock.now()

    # ---- definitions -------------------------------------------------------------------------
    async def register(
        self,
        name: str,
        type: AgentType,
        capabilities: Iterable[str],
        config: JSONObject,
        capacity: int = 1,
        weight: int = 1,
        workspace_id: str | None = None,
    ) -> Agent:
        """Register an agent of ``workspace_id`` (None: shared by every workspace)."""
        caps = _capabilities(capabilities)
        validate(name, type, caps, config, capacity)
        _check_weight(weight)
        agent = Agent(
            self._new_id(),
            name,
            type,
            caps,
            dict(config),
            capacity,
            weight,
            workspace_id=workspace_id,
        )
        await self._repo.add(agent)
        eid, now = self._stamp()
        self._notify(
            ag.AgentRegistered(
                event_id=eid,
                occurred_at=now,
                agent_id=agent.id,
                name=name,
                agent_type=type,
                capabilities=tuple(sorted(caps)),
            )
        )
        await self._changed()
        return agent

    async def update(
        self,
        agent_id: str,
        *,
        name: str | None = None,
        capabilities: Iterable[str] | None = None,
        config: JSONObject | None = None,
        capacity: int | None = None,
        weight: int | None = None,
    ) -> Agent:
        old = await self.get(agent_id)
        new = dataclasses.replace(
            old,
            name=old.name if name is None else name,
            capabilities=old.capabilities if capabilities is None else _capabilities(capabilities),
            config=old.config if config is None else dict(config),
            capacity=old.capacity if capacity is None else capacity,
            weight=old.weight if weight is None else weight,
        )
        validate(new.name, new.type, new.capabilities, new.config, new.capacity)
        _check_weight(new.weight)
        fields = ("name", "capabilities", "config", "capacity", "weight")
        changed = tuple(f for f in fields if getattr(old, f) != getattr(new, f))
        if changed:
            await self._repo.update(_definition(new))
            eid, now = self._stamp()
            self._notify(
                ag.AgentUpdated(
                    event_id=eid, occurred_at=now, agent_id=new.id, name=new.name, changed=changed
                )
            )
            await self._changed()
        return new

    async def deregister(self, agent_id: str) -> None:
        agent = await self.get(agent_id)
        await self._repo.remove(agent_id)
        self._load.pop(agent_id, None)
        self._locks.pop(agent_id, None)
        eid, now = self._stamp()
        self._notify(
            ag.AgentDeregistered(event_id=eid, occurred_at=now, agent_id=agent.id, name=agent.name)
        )
        await self._changed()

    async def get(self, agent_id: str) -> Agent:
        agent = await self._repo.get(agent_id)
        if agent is None:
            raise AgentNotFound(f"no agent with id {agent_id!r}")
        return self._with_load(agent)

    async def agents(self) -> list[Agent]:
        """Every registered agent, with this process's load."""
        return [self._with_load(a) for a in await self._repo.list()]

    # ---- status ------------------------------------------------------------------------------
    def _lock(self, agent_id: str) -> asyncio.Lock:
        return self._locks.setdefault(agent_id, asyncio.Lock())

    async def set_status(self, agent_id: str, status: AgentStatus, reason: str = "") -> Agent:
        """Move the agent to ``status`` (InvalidTransition if the table forbids it); a move to
        the current status changes nothing and emits nothing."""
        async with self._lock(agent_id):
            return await self._set_status(agent_id, status, reason)

    async def judge(
        self, agent_id: str, verdict: Callable[[Agent], tuple[AgentStatus, str]]
    ) -> Agent:
        """Set the status ``verdict`` gives for the agent as it is now (no heartbeat can land
        between the reading and the writing)."""
        async with self._lock(agent_id):
            status, reason = verdict(await self.get(agent_id))
            return await self._set_status(agent_id, status, reason)

    async def _set_status(self, agent_id: str, status: AgentStatus, reason: str) -> Agent:
        agent = await self.get(agent_id)
        if agent.status is status:
            return agent
        ag.transition(agent.status, status)
        last_seen = self._clock.now() if status is AgentStatus.HEALTHY else agent.last_seen
        new = dataclasses.replace(agent, status=status, last_seen=last_seen)
        await self._repo.update(_definition(new))
        eid, now = self._stamp()
        self._notify(
            ag.AgentStatusChanged(
                event_id=eid,
                occurred_at=now,
                agent_id=new.id,
                name=new.name,
                previous=agent.status,
                status=status,
                reason=reason,
            )
        )
        await self._changed()
        return new

    async def drain(self, agent_id: str) -> Agent:
        return await self.set_status(agent_id, AgentStatus.DRAINING, "drained")

    async def resume(self, agent_id: str) -> Agent:
        """Put a drained agent back: unknown until its next health check or heartbeat."""
        return await self.set_status(agent_id, AgentStatus.UNKNOWN, "resumed")

    async def heartbeat(self, agent_id: str) -> Agent:
        """A worker is alive: note the time, and put it back in the pool if it had left."""
        stored = await self._repo.get(agent_id)
        if stored is None:
            raise AgentNotFound(f"no agent with id {agent_id!r}")
        now = self._clock.now()
        # Every heartbeat counts here at once; other processes see it when it is written.
        self._load.setdefault(agent_id, _Load()).heard_at = now
        if stored.status in (AgentStatus.UNKNOWN, AgentStatus.UNHEALTHY):
            async with self._lock(agent_id):
                current = await self.get(agent_id)
                if current.status in (AgentStatus.UNKNOWN, AgentStatus.UNHEALTHY):
                    return await self._set_status(agent_id, AgentStatus.HEALTHY, "heartbeat")
                return current
        if stored.last_seen is None or now - stored.last_seen >= _HEARTBEAT_WRITE_S:
            await self._repo.update(dataclasses.replace(stored, last_seen=now))
            self.invalidate()
        return self._with_load(stored)

    # ---- selection ---------------------------------------------------------------------------
    async def acquire(
        self,
        requires: Iterable[str],
        strategy: Strategy,
        type: AgentType | None = None,
        workspace: str | None = None,
    ) -> Agent | None:
        """Pick an available agent (shared, or of ``workspace``) and count one more call in
        flight on it."""
        agents = await self._current()
        # No await from here on: the pick and the increment happen together.
        loaded = map(self._with_load, agents)
        chosen = strategy.pick(ag.candidates(loaded, requires, type, workspace))
        if chosen is None:
            return None
        load = self._load.setdefault(chosen.id, _Load())
        load.outstanding += 1
        return self._with_load(chosen)

    def release(self, agent_id: str, ok: bool, response_ms: float | None = None) -> None:
        """The call is over (synchronous, so it is safe in ``finally`` while cancelling)."""
        load = self._load.get(agent_id)
        if load is None:
            return
        load.outstanding = max(0, load.outstanding - 1)
        # Failures do not count: a broken agent failing fast must not look like a fast one.
        if ok and response_ms is not None:
            old = load.response_ms
            load.response_ms = response_ms if old is None else old + _EWMA * (response_ms - old)
        self._notify()

    async def unavailable(
        self, requires: Iterable[str], type: AgentType | None = None, workspace: str | None = None
    ) -> tuple[int, list[str]]:
        """How many agents ``workspace`` may use and why each one cannot take such a task now
        (another workspace's agents are not mentioned at all)."""
        needed = frozenset(requires)
        agents = [
            self._with_load(a)
            for a in await self._current()
            if workspace is None or a.workspace_id in (None, workspace)
        ]
        reasons = [
            f"{a.name}: {reason}"
            for a in agents
            if (reason := ag.unavailable_reason(a, needed, type)) is not None
        ]
        return len(agents), reasons

    async def _current(self) -> Sequence[Agent]:
        now = self._clock.now()
        if self._cache is not None and now - self._cache[0] < self._refresh_s:
            return self._cache[1]
        generation = self._generation
        if self._snapshots is not None:
            agents = await self._snapshots.load(self._repo.list)
        else:
            agents = await self._repo.list()
        if generation == self._generation:  # no invalidation while reading: keep it
            self._cache = (now, agents)
        return agents

    def _with_load(self, agent: Agent) -> Agent:
        load = self._load.get(agent.id)
        if load is None:
            return agent
        seen = agent.last_seen
        if load.heard_at is not None and (seen is None or load.heard_at > seen):
            seen = load.heard_at
        return dataclasses.replace(
            agent, outstanding=load.outstanding, response_ms=load.response_ms, last_seen=seen
        )


def _definition(agent: Agent) -> Agent:
    """``agent`` without this process's load, as repositories keep it."""
    return dataclasses.replace(agent, outstanding=0, response_ms=None)


def _capabilities(capabilities: Iterable[str]) -> frozenset[str]:
    if isinstance(capabilities, str):  # a lone name would become a set of letters
        raise AgentError("agent capabilities must be a list of names, not a string")
    return frozenset(capabilities)


def _check_weight(weight: int) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise AgentError(f"agent weight must be an integer >= 1, not {weight!r}")
