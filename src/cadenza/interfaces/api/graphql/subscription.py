"""Live events over WebSocket (graphql-transport-ws or graphql-ws), from the same feed and
with the same filter as the SSE streams: nothing lost or repeated, resumable with ``after``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from cadenza.application.identity import Permission
from cadenza.interfaces.api.graphql.context import Info
from cadenza.interfaces.api.graphql.enums import TaskStatus
from cadenza.interfaces.api.graphql.errors import BadInput
from cadenza.interfaces.api.graphql.query import check_text
from cadenza.interfaces.api.graphql.types import Event
from cadenza.interfaces.api.streams import EventFilter, parse_cursor

_AFTER = "resume after this event `position` (default: from now on)"
After = Annotated[str | None, strawberry.argument(description=_AFTER)]


async def _events(
    info: Info,
    instance_id: str | None,
    process_id: str | None,
    status: TaskStatus | None,
    after: str | None,
    *,
    tasks_only: bool,
) -> AsyncGenerator[Event, None]:
    check_text("instanceId", instance_id, 40)
    check_text("processId", process_id, 64)
    check_text("after", after, 40)
    ctx = info.context
    p = ctx.caller
    p.require(Permission.READ)
    try:
        cursor = parse_cursor(after)
    except ValueError as exc:
        raise BadInput(f"after: {after!r} is not an event position of this feed") from exc
    hub = ctx.services.hub
    value = status.value if status else None
    f = EventFilter(p.workspace_id, instance_id, process_id, value, tasks_only=tasks_only)
    async for entry in hub.stream(cursor or hub.head, f):
        yield Event.of(entry)


def _task_updates(
    info: Info,
    instance_id: strawberry.ID | None = None,
    process_id: strawberry.ID | None = None,
    status: TaskStatus | None = None,
    after: After = None,
) -> AsyncGenerator[Event, None]:
    return _events(info, instance_id, process_id, status, after, tasks_only=True)


def _all_events(
    info: Info,
    instance_id: strawberry.ID | None = None,
    process_id: strawberry.ID | None = None,
    status: TaskStatus | None = None,
    after: After = None,
) -> AsyncGenerator[Event, None]:
    return _events(info, instance_id, process_id, status, after, tasks_only=False)


@strawberry.type
class Subscription:
    task_updates: AsyncGenerator[Event, None] = strawberry.subscription(
        resolver=_task_updates, description="Task events (`Task*`) of the workspace."
    )
    events: AsyncGenerator[Event, None] = strawberry.subscription(
        resolver=_all_events, description="Every event of the workspace's instances."
    )
