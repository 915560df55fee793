"""Request and response bodies of the agent, worker, integration and administration routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from cadenza.application.accounts import MIN_PASSWORD
from cadenza.application.external import Assignment
from cadenza.application.identity import Role
from cadenza.application.ports_api import ApiKey, User, Workspace
from cadenza.domain.agent import Agent, AgentStatus, AgentType
from cadenza.interfaces.api.schemas import JsonObject, Strict

_CAPABILITY = Field(min_length=1, max_length=80)


# ---- agents ---------------------------------------------------------------------------------
class AgentIn(Strict):
    name: str = Field(min_length=1, max_length=63, description="a slug: a-z, 0-9, '-', '_'")
    type: AgentType
    capabilities: list[str] = Field(default_factory=list, max_length=100)
    config: JsonObject = Field(
        default_factory=dict,
        description="llm: provider, model; mcp: server, tool?; http: url, health_url?; "
        "worker: nothing",
    )
    capacity: int = Field(default=1, ge=1, le=100_000, description="calls at once")
    weight: int = Field(default=1, ge=1, le=1000, description="for the weighted strategy")
    shared: bool = Field(
        default=False,
        description="usable by every workspace's tasks (system admins only); otherwise the "
        "agent belongs to the caller's workspace",
    )


class AgentPatch(Strict):
    """Only the fields given change (the type cannot)."""

    name: str | None = Field(default=None, min_length=1, max_length=63)
    capabilities: list[str] | None = Field(default=None, max_length=100)
    config: JsonObject | None = None
    capacity: int | None = Field(default=None, ge=1, le=100_000)
    weight: int | None = Field(default=None, ge=1, le=1000)


class AgentOut(BaseModel):
    id: str
    name: str
    type: AgentType
    capabilities: list[str]
    config: JsonObject
    capacity: int
    weight: int
    status: AgentStatus
    last_seen: float | None
    outstanding: int = Field(description="calls in flight from this server")
    response_ms: float | None = Field(description="moving average of recent calls")
    shared: bool = Field(description="usable by every workspace (else only by its own)")

    @classmethod
    def of(cls, a: Agent) -> AgentOut:
        return cls(
            id=a.id,
            name=a.name,
            type=a.type,
            capabilities=sorted(a.capabilities),
            config=a.config,
            capacity=a.capacity,
            weight=a.weight,
            status=a.status,
            last_seen=a.last_seen,
            outstanding=a.outstanding,
            response_ms=a.response_ms,
            shared=a.workspace_id is None,
        )


class AgentHealth(BaseModel):
    id: str
    name: str
    type: AgentType
    status: AgentStatus
    last_seen: float | None
    healthy: bool


class AgentsHealthOut(BaseModel):
    summary: dict[str, int] = Field(description="total and a count per status")
    agents: list[AgentHealth]


# ---- workers --------------------------------------------------------------------------------
class PollIn(Strict):
    agent_id: str = Field(min_length=1, max_length=64)
    capabilities: list[str] | None = Field(
        default=None, max_length=100, description="default: the agent's registered ones"
    )
    timeout_s: float = Field(default=20.0, ge=0, le=30, description="long-poll wait")


class AssignmentOut(BaseModel):
    id: str
    agent_id: str
    instance_id: str
    task_id: str
    node_id: str
    requires: list[str]
    input: Any
    instructions: str | None
    idempotency_key: str = Field(description="the same for a repeated attempt: deduplicate")
    timeout_s: float

    @classmethod
    def of(cls, a: Assignment) -> AssignmentOut:
        return cls(**{**a.__dict__, "requires": list(a.requires)})


class CompleteIn(Strict):
    output: Any = Field(default=None, description="any JSON value: the task's result")


class FailIn(Strict):
    error: str = Field(min_length=1, max_length=4000)
    retryable: bool = True


# ---- MCP servers and providers --------------------------------------------------------------
class McpServerOut(BaseModel):
    name: str
    transport: str
    status: str
    scope: str = "environment"  # environment | shared | workspace (the caller's own)


class McpToolOut(BaseModel):
    name: str
    description: str
    input_schema: JsonObject
    annotations: JsonObject
    definition_hash: str = Field(description="the definition the server shows now")
    pinned_hash: str | None = Field(description="the approved definition")
    changed: bool
    needs_approval: bool = Field(description="changed since approved: calls are refused")


class ProviderOut(BaseModel):
    name: str
    kind: str
    base_url: str | None
    default: bool = Field(description="used by nodes that name no provider")
    models: list[str] = Field(description="configured default model, if any")
    breaker: str | None = Field(description="closed | open | half_open (None: no breaker)")


class ProviderTestOut(BaseModel):
    ok: bool
    latency_ms: float
    detail: str
    models: list[str] = Field(default_factory=list)


# ---- administration -------------------------------------------------------------------------
# the rules ``Identity`` enforces, stated in the schema so clients can check before sending
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,79}$"


class UserIn(Strict):
    username: str = Field(min_length=2, max_length=80, pattern=_NAME)
    password: str = Field(min_length=MIN_PASSWORD, max_length=256)
    is_admin: bool = False


class UserPatch(Strict):
    disabled: bool | None = None
    is_admin: bool | None = None
    password: str | None = Field(default=None, min_length=MIN_PASSWORD, max_length=256)


class UserDetailOut(BaseModel):
    id: str
    username: str
    is_admin: bool
    disabled: bool
    created_at: float

    @classmethod
    def of(cls, u: User) -> UserDetailOut:
        return cls(
            id=u.id,
            username=u.username,
            is_admin=u.is_admin,
            disabled=u.disabled,
            created_at=u.created_at,
        )


class WorkspaceIn(Strict):
    name: str = Field(min_length=2, max_length=80, pattern=_NAME)


class WorkspaceOut(BaseModel):
    id: str
    name: str
    created_at: float
    state: str = Field(
        default="active", description="'active', or 'deleting' (GET .../deletion: progress)"
    )

    @classmethod
    def of(cls, w: Workspace) -> WorkspaceOut:
        return cls(id=w.id, name=w.name, created_at=w.created_at, state=w.state)


class MemberIn(Strict):
    role: Role


class MemberOut(BaseModel):
    user_id: str
    username: str
    role: Role


class ApiKeyIn(Strict):
    name: str = Field(min_length=1, max_length=80)
    role: Role
    ttl_s: float | None = Field(default=None, gt=0, description="default: no expiry")


class ApiKeyOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    role: Role
    created_by: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked: bool

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyOut:
        return cls(**{f: getattr(k, f) for f in cls.model_fields})


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="shown this once only: store it now")
