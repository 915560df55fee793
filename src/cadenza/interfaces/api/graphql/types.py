"""GraphQL object types: read-only views of the API's rows, each built by ``of``."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from cadenza.application.ports import InstanceRow, StoredDefinition
from cadenza.application.ports_api import FeedEntry, TaskFilter
from cadenza.domain.agent import Agent as AgentModel
from cadenza.domain.definition import DefinitionStatus
from cadenza.domain.json import JSONObject
from cadenza.interfaces.api.graphql.context import Info
from cadenza.interfaces.api.graphql.cost import costly
from cadenza.interfaces.api.graphql.enums import AgentStatus, InstanceStatus, TaskStatus, one_of
from cadenza.interfaces.api.streams import EVENT_STATUS

MAX_TASKS = 1000  # per list: tasks of an instance, or the tasks query


def _str(row: JSONObject, key: str) -> str | None:
    value = row.get(key)
    return None if value is None else str(value)


def _num(row: JSONObject, key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


@strawberry.type(description="One version of a process definition.")
class ProcessVersion:
    process_id: strawberry.ID
    version: int
    status: str = strawberry.field(description=one_of(DefinitionStatus))
    content_hash: str
    name: str | None
    created_at: float
    document: JSON = strawberry.field(description="the cadenza/v1 document")

    @classmethod
    def of(cls, d: StoredDefinition) -> ProcessVersion:
        name = d.document.get("name")
        return cls(
            process_id=strawberry.ID(d.process_id),
            version=d.version,
            status=d.status,
            content_hash=d.content_hash,
            name=name if isinstance(name, str) else None,
            created_at=d.created_at,
            document=JSON(d.document),
        )


async def _versions(root: Process, info: Info) -> list[ProcessVersion]:
    ctx = info.context
    return [
        ProcessVersion.of(d) for d in await ctx.services.processes.versions(ctx.caller, root.id)
    ]


async def _version(root: Process, info: Info, number: int) -> ProcessVersion:
    ctx = info.context
    return ProcessVersion.of(await ctx.services.processes.version(ctx.caller, root.id, number))


@strawberry.type(description="A process: its newest version and its history of versions.")
class Process:
    id: strawberry.ID
    latest: ProcessVersion = strawberry.field(description="the newest version, any status")
    versions: list[ProcessVersion] = strawberry.field(
        resolver=costly(_versions), description="Every version, newest first."
    )
    version: ProcessVersion = strawberry.field(
        resolver=costly(_version), description="One version by number."
    )

    @classmethod
    def of(cls, d: StoredDefinition) -> Process:
        return cls(id=strawberry.ID(d.process_id), latest=ProcessVersion.of(d))


@strawberry.type(description="One run of a node (an attempt history is in `attempt`).")
class Task:
    id: strawberry.ID
    instance_id: strawberry.ID
    process_id: strawberry.ID | None
    scope: str
    node_id: str
    node_type: str
    status: str = strawberry.field(description=one_of(TaskStatus))
    attempt: int
    output: JSON | None
    error: str | None
    ports: list[str]
    detail: JSON
    usage: JSON | None
    leased_to: str | None
    created_at: float
    updated_at: float

    @classmethod
    def of(cls, row: JSONObject) -> Task:
        ports, detail, attempt = row.get("ports"), row.get("detail"), row.get("attempt")
        process_id = _str(row, "process_id")
        return cls(
            id=strawberry.ID(str(row["id"])),
            instance_id=strawberry.ID(str(row["instance_id"])),
            process_id=None if process_id is None else strawberry.ID(process_id),
            scope=_str(row, "scope") or "",
            node_id=_str(row, "node_id") or "",
            node_type=_str(row, "node_type") or "",
            status=_str(row, "status") or "",
            attempt=attempt if isinstance(attempt, int) else 0,
            output=None if row.get("output") is None else JSON(row.get("output")),
            error=_str(row, "error"),
            ports=[str(p) for p in ports] if isinstance(ports, list) else [],
            detail=JSON(detail if isinstance(detail, dict) else {}),
            usage=JSON(row["usage"]) if isinstance(row.get("usage"), dict) else None,
            leased_to=_str(row, "leased_to"),
            created_at=_num(row, "created_at"),
            updated_at=_num(row, "updated_at"),
        )


async def _instance_tasks(
    root: Instance, info: Info, status: TaskStatus | None = None
) -> list[Task]:
    ctx = info.context
    f = TaskFilter(status.value if status else None, root.id, None, MAX_TASKS)
    rows = await ctx.services.processes.tasks(ctx.caller, f)
    return [Task.of(r) for r in reversed(rows)]


@strawberry.type(description="A process instance.")
class Instance:
    id: strawberry.ID
    process_id: strawberry.ID
    version: int
    status: str = strawberry.field(description=one_of(InstanceStatus))
    inputs: JSON
    outputs: JSON | None
    error: str | None
    parent_instance_id: strawberry.ID | None
    created_at: float
    updated_at: float

    tasks: list[Task] = strawberry.field(
        resolver=costly(_instance_tasks),
        description=f"Its tasks, oldest first (at most {MAX_TASKS}).",
    )

    @classmethod
    def of(cls, r: InstanceRow) -> Instance:
        parent = r.parent_instance_id
        return cls(
            id=strawberry.ID(r.id),
            process_id=strawberry.ID(r.process_id),
            version=r.version,
            status=r.status,
            inputs=JSON(r.inputs),
            outputs=None if r.outputs is None else JSON(r.outputs),
            error=r.error,
            parent_instance_id=None if parent is None else strawberry.ID(parent),
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


@strawberry.type(description="A page of instances, newest first.")
class InstancePage:
    items: list[Instance]
    next_cursor: str | None = strawberry.field(description="pass as `cursor` for the next page")


@strawberry.type(description="A registered agent (its configuration is not shown here).")
class Agent:
    id: strawberry.ID
    name: str
    type: str
    capabilities: list[str]
    capacity: int
    weight: int
    status: AgentStatus
    outstanding: int = strawberry.field(description="calls in flight from this server")
    last_seen: float | None
    response_ms: float | None

    @classmethod
    def of(cls, a: AgentModel) -> Agent:
        return cls(
            id=strawberry.ID(a.id),
            name=a.name,
            type=a.type.value,
            capabilities=sorted(a.capabilities),
            capacity=a.capacity,
            weight=a.weight,
            status=a.status,
            outstanding=a.outstanding,
            last_seen=a.last_seen,
            response_ms=a.response_ms,
        )


@strawberry.type(description="A committed event, as the SSE stream carries it.")
class Event:
    position: str = strawberry.field(description="resume after it with `after`")
    id: strawberry.ID
    type: str
    instance_id: strawberry.ID
    process_id: strawberry.ID
    task_id: strawberry.ID | None
    status: str | None = strawberry.field(description="the status the event leaves")
    occurred_at: float
    data: JSON

    @classmethod
    def of(cls, entry: FeedEntry) -> Event:
        e = entry.event
        data = e.data()
        task_id = data.get("task_id")
        return cls(
            position=entry.position,
            id=strawberry.ID(e.event_id),
            type=e.type_name,
            instance_id=strawberry.ID(e.instance_id),
            process_id=strawberry.ID(entry.process_id),
            task_id=strawberry.ID(task_id) if isinstance(task_id, str) else None,
            status=EVENT_STATUS.get(e.type_name),
            occurred_at=e.occurred_at,
            data=JSON(data),
        )
