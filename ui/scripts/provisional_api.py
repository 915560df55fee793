"""A provisional OpenAPI document for the console, written before the real API existed.

Run: .venv/bin/python ui/scripts/provisional_api.py ui/openapi.json
The real schema comes from `python scripts/export_openapi.py ui/openapi.json`; once it exists this
file is only a record of what the console first assumed and can be deleted.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

JSONValue = Any


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, JSONValue]] | None = None


PROBLEM = {"default": {"model": Problem, "content": {"application/problem+json": {}}}}


class LoginIn(BaseModel):
    username: str
    password: str


class RefreshIn(BaseModel):
    refresh_token: str


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: str
    username: str
    is_admin: bool
    created_at: str | None = None


class WorkspaceOut(BaseModel):
    id: str
    name: str
    role: Literal["admin", "editor", "operator", "viewer"]


class MeOut(BaseModel):
    user: UserOut
    workspaces: list[WorkspaceOut]


class NodeTypeOut(BaseModel):
    name: str
    type_version: int
    description: str
    config_schema: dict[str, JSONValue]
    ports: list[str]
    dynamic_ports: bool
    has_body: bool
    execution: Literal["inline", "worker", "control"]


class DocumentIn(BaseModel):
    document: dict[str, JSONValue]


class ProblemItem(BaseModel):
    path: str
    message: str


class ValidationOut(BaseModel):
    valid: bool
    problems: list[ProblemItem]


class VersionOut(BaseModel):
    process_id: str
    version: int
    name: str
    status: Literal["draft", "published", "archived"]
    content_hash: str
    created_at: str
    published_at: str | None = None


class VersionDetail(VersionOut):
    document: dict[str, JSONValue]


class ProcessSummary(BaseModel):
    process_id: str
    name: str
    latest_version: int
    published_version: int | None = None
    updated_at: str


class ProcessList(BaseModel):
    items: list[ProcessSummary]


class DiffChange(BaseModel):
    path: str
    op: Literal["added", "removed", "changed"]
    before: JSONValue = None
    after: JSONValue = None


class DiffOut(BaseModel):
    process_id: str
    from_version: int
    to_version: int
    changes: list[DiffChange]


class StartIn(BaseModel):
    process_id: str
    version: int | None = None
    inputs: dict[str, JSONValue] = {}


InstanceStatus = Literal["running", "completed", "failed", "cancelled"]
TaskStatus = Literal["scheduled", "running", "waiting", "completed", "failed", "skipped", "cancelled"]


class InstanceOut(BaseModel):
    id: str
    process_id: str
    version: int
    status: InstanceStatus
    inputs: dict[str, JSONValue]
    outputs: dict[str, JSONValue] | None = None
    error: str | None = None
    created_at: str
    updated_at: str


class InstancePage(BaseModel):
    items: list[InstanceOut]
    next_cursor: str | None = None


class TaskOut(BaseModel):
    id: str
    node_id: str
    node_type: str
    scope: str = ""
    status: TaskStatus
    attempt: int
    input: JSONValue = None
    output: JSONValue = None
    error: str | None = None
    usage: dict[str, JSONValue] = {}
    created_at: str
    updated_at: str


class InstanceDetail(InstanceOut):
    tasks: list[TaskOut]


class EventOut(BaseModel):
    seq: int
    type: str
    occurred_at: str
    data: dict[str, JSONValue]


class EventList(BaseModel):
    items: list[EventOut]


class DecisionIn(BaseModel):
    comment: str = ""


class ApprovalOut(BaseModel):
    task_id: str
    instance_id: str
    process_id: str
    node_id: str
    title: str
    description: str | None = None
    created_at: str
    timeout_at: str | None = None


class Point(BaseModel):
    t: float
    v: float


class Series(BaseModel):
    name: Literal["active_instances", "task_rate", "task_latency_p95", "agent_response_p95"]
    label: str | None = None
    unit: str
    points: list[Point]


class SeriesOut(BaseModel):
    series: list[Series]


AgentType = Literal["llm", "mcp", "http", "worker"]


class AgentIn(BaseModel):
    name: str
    type: AgentType
    capabilities: list[str] = []
    config: dict[str, JSONValue] = {}
    capacity: int = 10
    weight: int = 1


class AgentPatch(BaseModel):
    capabilities: list[str] | None = None
    config: dict[str, JSONValue] | None = None
    capacity: int | None = None
    weight: int | None = None


class AgentOut(AgentIn):
    id: str
    status: Literal["healthy", "unhealthy", "draining", "unknown"]
    load: int
    response_time_ms: dict[str, float] = {}
    last_checked_at: str | None = None


class McpServerOut(BaseModel):
    name: str
    transport: Literal["stdio", "http"]
    status: str
    tool_count: int


class McpToolOut(BaseModel):
    name: str
    description: str | None = None
    input_schema: dict[str, JSONValue] = {}
    annotations: dict[str, JSONValue] = {}
    pinned_hash: str | None = None
    current_hash: str | None = None
    changed: bool = False


class ProviderOut(BaseModel):
    name: str
    kind: str
    base_url: str | None = None
    default_model: str | None = None
    offline: bool = False


class ProviderTestOut(BaseModel):
    ok: bool
    latency_ms: float | None = None
    detail: str | None = None


class UserIn(BaseModel):
    username: str
    password: str
    is_admin: bool = False


class ApiKeyIn(BaseModel):
    name: str
    role: Literal["admin", "editor", "operator", "viewer"]


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    workspace_id: str
    created_at: str
    last_used_at: str | None = None


class ApiKeyCreated(BaseModel):
    key: ApiKeyOut
    secret: str


class WorkspaceIn(BaseModel):
    name: str


class SettingOut(BaseModel):
    key: str
    value: JSONValue = None
    source: str


def _routes() -> APIRouter:  # noqa: C901 - a flat list of stubs
    r = APIRouter(prefix="/api/v1", responses=PROBLEM)  # type: ignore[arg-type]
    ok: Any = None

    def _body(model: type[BaseModel]) -> Any:
        def f(body: BaseModel) -> None:
            return None

        f.__annotations__ = {"body": model, "return": None}
        return f

    r.post("/auth/login", response_model=TokenPair)(_body(LoginIn))
    r.post("/auth/refresh", response_model=TokenPair)(_body(RefreshIn))
    r.get("/me", response_model=MeOut)(lambda: ok)
    r.get("/node-types", response_model=list[NodeTypeOut])(lambda: ok)
    d = "/processes/definitions"
    r.get(d, response_model=ProcessList)(lambda: ok)
    r.post(d, response_model=VersionOut, status_code=201)(_body(DocumentIn))
    r.post(f"{d}/validate", response_model=ValidationOut)(_body(DocumentIn))
    r.get(d + "/{process_id}/versions", response_model=list[VersionOut])(lambda process_id: ok)
    r.get(d + "/{process_id}/versions/{version}", response_model=VersionDetail)(
        lambda process_id, version: ok
    )
    r.post(d + "/{process_id}/versions/{version}/publish", response_model=VersionOut)(
        lambda process_id, version: ok
    )

    def diff(process_id: str, from_: int = Query(alias="from"), to: int = Query()) -> None:
        return None

    r.get(d + "/{process_id}/diff", response_model=DiffOut)(diff)
    i = "/processes/instances"

    def instances(
        status: InstanceStatus | None = None,
        process_id: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> None:
        return None

    r.get(i, response_model=InstancePage)(instances)
    r.post(i, response_model=InstanceOut, status_code=201)(_body(StartIn))
    r.get(i + "/{instance_id}", response_model=InstanceDetail)(lambda instance_id: ok)
    r.get(i + "/{instance_id}/events", response_model=EventList)(lambda instance_id: ok)
    r.post(i + "/{instance_id}/cancel", response_model=InstanceOut)(lambda instance_id: ok)
    r.post(i + "/{instance_id}/retry", response_model=InstanceOut)(lambda instance_id: ok)

    def stream(instance_id: str | None = None, access_token: str | None = None,
               workspace: str | None = None) -> StreamingResponse:  # fmt: skip
        raise NotImplementedError

    r.get("/events/stream", response_class=StreamingResponse)(stream)
    t = "/execution/tasks/{task_id}"
    r.post(t + "/retry", response_model=TaskOut)(lambda task_id: ok)
    for verb in ("approve", "reject"):

        def decide(task_id: str, body: DecisionIn) -> None:
            return None

        r.post(f"{t}/{verb}", response_model=TaskOut)(decide)
    r.get("/execution/approvals", response_model=list[ApprovalOut])(lambda: ok)

    def series(window: int = 3600, step: int = 60) -> None:
        return None

    r.get("/metrics/series", response_model=SeriesOut)(series)
    r.get("/agents", response_model=list[AgentOut])(lambda: ok)
    r.post("/agents/register", response_model=AgentOut, status_code=201)(_body(AgentIn))

    def patch_agent(agent_id: str, body: AgentPatch) -> None:
        return None

    r.patch("/agents/{agent_id}", response_model=AgentOut)(patch_agent)
    r.post("/agents/{agent_id}/drain", response_model=AgentOut)(lambda agent_id: ok)
    r.delete("/agents/{agent_id}", status_code=204)(lambda agent_id: ok)
    r.get("/mcp-servers", response_model=list[McpServerOut])(lambda: ok)
    r.get("/mcp-servers/{name}/tools", response_model=list[McpToolOut])(lambda name: ok)
    r.get("/providers", response_model=list[ProviderOut])(lambda: ok)
    r.post("/providers/{name}/test", response_model=ProviderTestOut)(lambda name: ok)
    r.get("/users", response_model=list[UserOut])(lambda: ok)
    r.post("/users", response_model=UserOut, status_code=201)(_body(UserIn))
    r.get("/api-keys", response_model=list[ApiKeyOut])(lambda: ok)
    r.post("/api-keys", response_model=ApiKeyCreated, status_code=201)(_body(ApiKeyIn))
    r.delete("/api-keys/{key_id}", status_code=204)(lambda key_id: ok)
    r.get("/workspaces", response_model=list[WorkspaceOut])(lambda: ok)
    r.post("/workspaces", response_model=WorkspaceOut, status_code=201)(_body(WorkspaceIn))
    r.get("/settings", response_model=list[SettingOut])(lambda: ok)
    return r


def main() -> None:
    app = FastAPI(title="Cadenza (provisional)", version="0.1.0")
    app.include_router(_routes())
    text = json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        out.write(text)


if __name__ == "__main__":
    main()
