"""``MemoryAgentRepository``: the in-process ``AgentRepository`` (the default, and the reference
the SQL one is compared with)."""

from __future__ import annotations

from cadenza.application.agent_definitions import conflict, name_taken
from cadenza.domain.agent import Agent


class MemoryAgentRepository:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}

    async def add(self, agent: Agent) -> None:
        self._check_name(agent)
        self._agents[agent.id] = agent

    async def update(self, agent: Agent) -> None:
        if agent.id in self._agents:
            self._check_name(agent)
            self._agents[agent.id] = agent

    async def remove(self, agent_id: str) -> None:
        self._agents.pop(agent_id, None)

    async def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    async def list(self) -> list[Agent]:
        return sorted(self._agents.values(), key=lambda a: a.name)

    def _check_name(self, agent: Agent) -> None:
        if any(name_taken(agent, a) for a in self._agents.values()):
            raise conflict(agent)
