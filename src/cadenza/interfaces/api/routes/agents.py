"""Agents: register, inspect, change, drain, remove; their health and worker heartbeats.

An agent belongs to the workspace that registered it, or is shared by all (registered by a
system admin with ``shared``); see ``application/agent_access.py`` for who may do what.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Response, status

from cadenza.application import agent_access as access
from cadenza.application.audit import NEW_ID, Target
from cadenza.domain.agent import Agent, AgentStatus
from cadenza.domain.errors import Conflict, InvalidTransition
from cadenza.domain.json import JSON, JSONObject
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.schemas_admin import (
    AgentHealth,
    AgentIn,
    AgentOut,
    AgentPatch,
    AgentsHealthOut,
)

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.get("")
async def list_agents(p: Caller, svc: Svc) -> list[AgentOut]:
    """Every agent with its status and this server's live load (calls in flight, latency)."""
    return [AgentOut.of(a) for a in await access.agents_for(svc.agents, p)]


@router.get("/health")
async def agents_health(p: Caller, svc: Svc) -> AgentsHealthOut:
    """Each agent's health, and how many agents are in each status."""
    agents = await access.agents_for(svc.agents, p)
    counts = Counter(a.status for a in agents)
    summary = {"total": len(agents)} | {str(s): counts[s] for s in AgentStatus}
    return AgentsHealthOut(
        summary=summary,
        agents=[
            AgentHealth(
                id=a.id,
                name=a.name,
                type=a.type,
                status=a.status,
                last_seen=a.last_seen,
                healthy=a.status is AgentStatus.HEALTHY,
            )
            for a in agents
        ],
    )


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register_agent(body: AgentIn, p: Caller, svc: Svc) -> AgentOut:
    """Register an agent. It takes no task until a health check (or, for a worker, a
    heartbeat or poll) finds it healthy."""
    owner = access.owner_for_registration(p, body.shared)
    after: JSONObject = {
        "name": body.name,
        "type": str(body.type),
        "capabilities": list(body.capabilities),
        "config_keys": _keys(body.config),  # names only: a config may hold credentials
        "shared": owner is None,
    }
    async with act(svc, p, "agent.register", Target("agent", NEW_ID, owner), after=after):
        agent = await svc.agents.register(
            body.name,
            body.type,
            body.capabilities,
            body.config,
            body.capacity,
            body.weight,
            workspace_id=owner,
        )
    return AgentOut.of(agent)


@router.get("/{agent_id}")
async def get_agent(agent_id: str, p: Caller, svc: Svc) -> AgentOut:
    return AgentOut.of(await access.agent_for(svc.agents, p, agent_id))


@router.patch("/{agent_id}")
async def update_agent(agent_id: str, body: AgentPatch, p: Caller, svc: Svc) -> AgentOut:
    """Change the given fields; the others keep their values."""
    found = await access.changeable(svc.agents, p, agent_id)
    given = body.model_dump(exclude_unset=True)
    after: JSONObject = {k: v for k, v in given.items() if k != "config"}
    if "config" in given:
        after["config_keys"] = _keys(given["config"])
    async with act(svc, p, "agent.update", _agent(found), after=after):
        agent = await svc.agents.update(
            agent_id,
            name=body.name,
            capabilities=body.capabilities,
            config=body.config,
            capacity=body.capacity,
            weight=body.weight,
        )
    return AgentOut.of(agent)


@router.post("/{agent_id}/drain")
async def drain_agent(agent_id: str, p: Caller, svc: Svc) -> AgentOut:
    """Take no new tasks; calls in flight finish. ``resume`` puts it back."""
    found = await access.changeable(svc.agents, p, agent_id)
    async with act(svc, p, "agent.drain", _agent(found)):
        return AgentOut.of(await svc.agents.drain(agent_id))


@router.post("/{agent_id}/resume")
async def resume_agent(agent_id: str, p: Caller, svc: Svc) -> AgentOut:
    """Undo a drain: the agent is ``unknown`` until its next health check or heartbeat."""
    found = await access.changeable(svc.agents, p, agent_id)
    try:
        async with act(svc, p, "agent.resume", _agent(found)):
            return AgentOut.of(await svc.agents.resume(agent_id))
    except InvalidTransition as exc:
        raise Conflict(f"only a draining agent can be resumed ({exc})") from exc


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deregister_agent(agent_id: str, p: Caller, svc: Svc) -> Response:
    found = await access.changeable(svc.agents, p, agent_id)
    async with act(svc, p, "agent.delete", _agent(found), before={"name": found.name}):
        await svc.agents.deregister(agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _keys(config: JSONObject | None) -> list[JSON]:
    """The names in an agent's config, never the values (they may hold credentials)."""
    return [str(k) for k in sorted(config or {})]


def _agent(agent: Agent) -> Target:
    return Target("agent", agent.id, agent.workspace_id)


@router.post("/{agent_id}/heartbeat")
async def heartbeat(agent_id: str, p: Caller, svc: Svc) -> AgentOut:
    """A worker agent is alive (polling counts too); an unhealthy one rejoins the pool."""
    await access.operable(svc.agents, p, agent_id)
    await svc.external.heartbeat(agent_id)
    return AgentOut.of(await svc.agents.get(agent_id))
