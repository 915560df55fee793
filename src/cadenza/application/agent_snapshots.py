"""The agent list in the shared cache: one snapshot every process reads instead of the table.

The snapshot is stored under a generation number that every change increments
(``changed``), and a reader stores what it read from the database under the generation it
saw *before* reading: a reader that raced a change stores its stale list under a generation
nobody reads any more. Heartbeat times written in between are not a change (``last_seen`` in
a snapshot may lag by up to ``ttl_s``; health checks read the table, not the snapshot).
If the cache was down while an agent changed, the old snapshot lives at most ``ttl_s``.

The snapshot holds every workspace's agents (like the registry's own list): selection filters
by workspace after reading it (``cadenza.domain.agent.candidates``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from cadenza.application.ports_cache import SharedCache, cache_key, get_json, set_json
from cadenza.domain.agent import Agent, AgentStatus, AgentType
from cadenza.domain.json import JSON, JSONObject

_GENERATION = cache_key("agents", "*", "generation")


class AgentSnapshots:
    def __init__(self, cache: SharedCache, ttl_s: float) -> None:
        self._cache = cache
        self._ttl_s = ttl_s

    async def load(self, fetch: Callable[[], Awaitable[list[Agent]]]) -> list[Agent]:
        """The snapshot of the current generation, else ``fetch()`` (stored for the others)."""
        raw = await self._cache.get(_GENERATION)
        generation = raw.decode() if raw is not None and raw.isdigit() else "0"
        key = cache_key("agents", "*", "snapshot", generation)
        found = decode(await get_json(self._cache, key))
        if found is not None:
            return found
        agents = await fetch()
        await set_json(self._cache, key, encode(agents), self._ttl_s)
        return agents

    async def changed(self) -> None:
        await self._cache.incr(_GENERATION)


def encode(agents: Sequence[Agent]) -> JSON:
    return [
        {
            "id": a.id,
            "name": a.name,
            "type": a.type.value,
            "capabilities": list[JSON](sorted(a.capabilities)),
            "config": a.config,
            "capacity": a.capacity,
            "weight": a.weight,
            "status": a.status.value,
            "last_seen": a.last_seen,
            "workspace_id": a.workspace_id,
        }
        for a in agents
    ]


def decode(value: JSON | None) -> list[Agent] | None:
    """The agents of a well-formed snapshot; None (a miss) for anything else."""
    if not isinstance(value, list):
        return None
    agents = []
    for item in value:
        agent = _agent(item) if isinstance(item, dict) else None
        if agent is None:
            return None
        agents.append(agent)
    return agents


def _agent(v: JSONObject) -> Agent | None:
    ident, name, type_, status = v.get("id"), v.get("name"), v.get("type"), v.get("status")
    caps, config, capacity, weight = (
        v.get("capabilities"),
        v.get("config"),
        v.get("capacity"),
        v.get("weight"),
    )
    seen, workspace = v.get("last_seen"), v.get("workspace_id")
    if not (
        isinstance(ident, str)
        and isinstance(name, str)
        and type_ in set(AgentType)
        and status in set(AgentStatus)
        and isinstance(caps, list)
        and all(isinstance(c, str) for c in caps)
        and isinstance(config, dict)
        and isinstance(capacity, int)
        and isinstance(weight, int)
        and (seen is None or isinstance(seen, (int, float)))
        and (workspace is None or isinstance(workspace, str))
    ):
        return None
    return Agent(
        ident,
        name,
        AgentType(str(type_)),
        frozenset(str(c) for c in caps),
        config,
        capacity,
        weight,
        status=AgentStatus(str(status)),
        last_seen=None if seen is None else float(seen),
        workspace_id=workspace,
    )
