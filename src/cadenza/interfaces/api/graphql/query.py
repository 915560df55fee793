"""Queries over processes, instances, tasks and agents, through the same use cases as REST."""

from __future__ import annotations

import re
from typing import Annotated

import strawberry

from cadenza.application.agent_access import agents_for
from cadenza.application.ports_api import InstanceFilter, TaskFilter
from cadenza.interfaces.api.graphql.context import Info
from cadenza.interfaces.api.graphql.cost import costly
from cadenza.interfaces.api.graphql.enums import AgentStatus, InstanceStatus, TaskStatus
from cadenza.interfaces.api.graphql.errors import BadInput
from cadenza.interfaces.api.graphql.types import (
    MAX_TASKS,
    Agent,
    Instance,
    InstancePage,
    Process,
    Task,
)

MAX_INSTANCES = 500
_SEARCH = "a prefix of the instance or process id"
_CURSOR = re.compile(r"^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?\|\w+$")  # the REST route's pattern


def check_text(name: str, value: str | None, most: int) -> None:
    if value is not None and not 1 <= len(value) <= most:
        raise BadInput(f"{name}: 1-{most} characters")


def check_range(name: str, value: int, least: int, most: int) -> None:
    if not least <= value <= most:
        raise BadInput(f"{name}: between {least} and {most}")


async def _processes(info: Info) -> list[Process]:
    ctx = info.context
    return [Process.of(d) for d in await ctx.services.processes.all(ctx.caller)]


async def _process(info: Info, id: strawberry.ID) -> Process:
    check_text("id", id, 64)
    ctx = info.context
    return Process.of(await ctx.services.processes.version(ctx.caller, id, None))


async def _instances(
    info: Info,
    status: InstanceStatus | None = None,
    process_id: strawberry.ID | None = None,
    search: Annotated[str | None, strawberry.argument(description=_SEARCH)] = None,
    cursor: str | None = None,
    limit: int = 50,
) -> InstancePage:
    check_text("processId", process_id, 64)
    check_text("search", search, 64)
    check_range("limit", limit, 1, MAX_INSTANCES)
    if cursor is not None and (len(cursor) > 120 or not _CURSOR.match(cursor)):
        raise BadInput("cursor: not a cursor of this list; pass nextCursor unchanged")
    ctx = info.context
    f = InstanceFilter(status.value if status else None, process_id, search, cursor, limit)
    rows, next_cursor = await ctx.services.processes.instances(ctx.caller, f)
    return InstancePage(items=[Instance.of(r) for r in rows], next_cursor=next_cursor)


async def _instance(info: Info, id: strawberry.ID) -> Instance:
    check_text("id", id, 40)
    ctx = info.context
    return Instance.of(await ctx.services.processes.instance(ctx.caller, id))


async def _tasks(
    info: Info,
    status: TaskStatus | None = None,
    instance_id: strawberry.ID | None = None,
    node_type: str | None = None,
    limit: int = 100,
) -> list[Task]:
    check_text("instanceId", instance_id, 40)
    check_text("nodeType", node_type, 32)
    check_range("limit", limit, 1, MAX_TASKS)
    ctx = info.context
    f = TaskFilter(status.value if status else None, instance_id, node_type, limit)
    return [Task.of(r) for r in await ctx.services.processes.tasks(ctx.caller, f)]


async def _task(info: Info, id: strawberry.ID) -> Task:
    check_text("id", id, 40)
    ctx = info.context
    return Task.of(await ctx.services.processes.task(ctx.caller, id))


async def _agents(info: Info, status: AgentStatus | None = None) -> list[Agent]:
    ctx = info.context
    found = [Agent.of(a) for a in await agents_for(ctx.services.agents, ctx.caller)]
    return [a for a in found if status is None or a.status is status]


@strawberry.type
class Query:
    processes: list[Process] = strawberry.field(
        resolver=costly(_processes), description="Every process of the workspace, newest version."
    )
    process: Process = strawberry.field(
        resolver=costly(_process),
        description="One process (NOT_FOUND when the workspace has none).",
    )
    instances: InstancePage = strawberry.field(
        resolver=costly(_instances), description="A page of instances, newest first, as in REST."
    )
    instance: Instance = strawberry.field(
        resolver=costly(_instance), description="One instance; its `tasks` field lists its tasks."
    )
    tasks: list[Task] = strawberry.field(
        resolver=costly(_tasks), description="Tasks of the workspace, newest first."
    )
    task: Task = strawberry.field(resolver=costly(_task), description="One task.")
    agents: list[Agent] = strawberry.field(
        resolver=costly(_agents), description="The agents of this workspace and the shared ones."
    )
