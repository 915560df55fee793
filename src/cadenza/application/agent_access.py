"""Which agents a caller may see, change and act as.

An agent belongs to the workspace that registered it, or is shared (registered by a system
admin, or from configuration) and used by every workspace's tasks. Another workspace's agent
does not exist for a caller (not found, like every other resource). Shared agents are
changed, and shared workers operated, by system admins only: their assignments can come from
any workspace.
"""

from __future__ import annotations

from cadenza.application.agent_definitions import AgentNotFound
from cadenza.application.agents import AgentRegistry
from cadenza.application.identity import Forbidden, Permission, Principal
from cadenza.domain.agent import Agent


def visible(p: Principal, agent: Agent) -> bool:
    return agent.workspace_id is None or agent.workspace_id == p.workspace_id


async def agents_for(registry: AgentRegistry, p: Principal) -> list[Agent]:
    p.require(Permission.READ)
    return [a for a in await registry.agents() if visible(p, a)]


async def agent_for(registry: AgentRegistry, p: Principal, agent_id: str) -> Agent:
    p.require(Permission.READ)
    agent = await registry.get(agent_id)
    if not visible(p, agent):
        raise AgentNotFound(f"no agent with id {agent_id!r}")
    return agent


async def changeable(registry: AgentRegistry, p: Principal, agent_id: str) -> Agent:
    """The agent, if ``p`` may change, drain or remove it."""
    agent = await agent_for(registry, p, agent_id)
    p.require(Permission.AGENTS)
    if agent.workspace_id is None and not p.is_system_admin:
        raise Forbidden("shared agents are changed by system admins only")
    return agent


async def operable(registry: AgentRegistry, p: Principal, agent_id: str) -> Agent:
    """The agent, if ``p`` may act as it (heartbeat, poll, report results)."""
    agent = await agent_for(registry, p, agent_id)
    p.require(Permission.RUN)
    if agent.workspace_id is None and not p.is_system_admin:
        raise Forbidden("shared worker agents are operated by system admins only")
    return agent


def owner_for_registration(p: Principal, shared: bool) -> str | None:
    """The workspace a new agent belongs to (None: shared, for system admins only)."""
    p.require(Permission.AGENTS)
    if not shared:
        return p.workspace_id
    if not p.is_system_admin:
        raise Forbidden("only system admins register shared agents")
    return None
