"""The agent registry: register, update, drain and deregister agents; acquire and release them.

Definitions live in an ``AgentRepository`` (shared by every process on SQL) and follow the
rules of ``agent_definitions``; the load of each agent (calls in flight, response times) is
this process's own and stays in memory (``agent_local``), beside a recent copy of the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterable

from cadenza.application.agent_definitions import (
    AgentNotFound,
    AgentRepository,
    capability_set,
    check_weight,
    validate,
)
from cadenza.application.agent_local import AgentList, AgentLoads, definition
from cadenza.application.agent_snapshots import AgentSnapshots
from cadenza.application.ports import Clock, IdGenerator
from cadenza.domain import agent as ag
from cadenza.domain.agent import Agent, AgentEvent, AgentStatus, AgentType, Strategy
from cadenza.domain.json import JSONObject

_HEARTBEAT_WRITE_S = 5.0  # a heartbeat younger than this is not written again


AgentListener = Callable[[AgentEvent], None]


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
        self._list = AgentList(repository.list, clock, refresh_s, snapshots)
        self._snapshots = snapshots
        self._announce = announce
        self._loads = AgentLoads()
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
        self._list.invalidate()

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
        caps = capability_set(capabilities)
        validate(name, type, caps, config, capacity)
        check_weight(weight)
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
            capabilities=old.capabilities if capabilities is None else capability_set(capabilities),
            config=old.config if config is None else dict(config),
            capacity=old.capacity if capacity is None else capacity,
            weight=old.weight if weight is None else weight,
        )
        validate(new.name, new.type, new.capabilities, new.config, new.capacity)
        check_weight(new.weight)
        fields = ("name", "capabilities", "config", "capacity", "weight")
        changed = tuple(f for f in fields if getattr(old, f) != getattr(new, f))
        if changed:
            await self._repo.update(definition(new))
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
        self._loads.forget(agent_id)
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
        return self._loads.applied(agent)

    async def agents(self) -> list[Agent]:
        """Every registered agent, with this process's load."""
        return [self._loads.applied(a) for a in await self._repo.list()]

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
        await self._repo.update(definition(new))
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
        self._loads.heard(agent_id, now)
        if stored.status in (AgentStatus.UNKNOWN, AgentStatus.UNHEALTHY):
            async with self._lock(agent_id):
                current = await self.get(agent_id)
                if current.status in (AgentStatus.UNKNOWN, AgentStatus.UNHEALTHY):
                    return await self._set_status(agent_id, AgentStatus.HEALTHY, "heartbeat")
                return current
        if stored.last_seen is None or now - stored.last_seen >= _HEARTBEAT_WRITE_S:
            await self._repo.update(dataclasses.replace(stored, last_seen=now))
            self.invalidate()
        return self._loads.applied(stored)

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
        agents = await self._list.current()
        # No await from here on: the pick and the increment happen together.
        loaded = map(self._loads.applied, agents)
        chosen = strategy.pick(ag.candidates(loaded, requires, type, workspace))
        if chosen is None:
            return None
        self._loads.started(chosen.id)
        return self._loads.applied(chosen)

    def release(self, agent_id: str, ok: bool, response_ms: float | None = None) -> None:
        """The call is over (synchronous, so it is safe in ``finally`` while cancelling)."""
        if self._loads.finished(agent_id, ok, response_ms):
            self._notify()

    async def unavailable(
        self, requires: Iterable[str], type: AgentType | None = None, workspace: str | None = None
    ) -> tuple[int, list[str]]:
        """How many agents ``workspace`` may use and why each one cannot take such a task now
        (another workspace's agents are not mentioned at all)."""
        needed = frozenset(requires)
        agents = [
            self._loads.applied(a)
            for a in await self._list.current()
            if workspace is None or a.workspace_id in (None, workspace)
        ]
        reasons = [
            f"{a.name}: {reason}"
            for a in agents
            if (reason := ag.unavailable_reason(a, needed, type)) is not None
        ]
        return len(agents), reasons
