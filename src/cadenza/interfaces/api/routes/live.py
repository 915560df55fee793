"""Live routes: SSE streams of events and of task updates, and the WebSocket twin."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from cadenza.application.identity import AuthError, Forbidden, Permission
from cadenza.domain.errors import Conflict
from cadenza.domain.status import TaskStatus
from cadenza.interfaces.api.guard import Caller, Svc, credentials, resolve
from cadenza.interfaces.api.problems import RateLimited
from cadenza.interfaces.api.recheck import until_revoked
from cadenza.interfaces.api.streams import EventFilter, event_json, parse_cursor, sse

router = APIRouter(prefix="/api/v1", tags=["live"])
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

InstanceQ = Annotated[str | None, Query(max_length=40)]
ProcessQ = Annotated[str | None, Query(max_length=64)]
StatusQ = Annotated[
    TaskStatus | None, Query(description="only events that leave their subject in this status")
]
LastId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)]
AfterQ = Annotated[
    str | None,
    Query(
        max_length=40,
        description="resume after this event id; 'start' with instance_id: from its first event",
    ),
]


async def _response(svc: Svc, p: Caller, f: EventFilter, last: str | None) -> StreamingResponse:
    if last == "start" and f.instance_id:
        await svc.processes.instance(p, f.instance_id)  # 404 for another workspace's
        start = await svc.processes.queries.feed_start(f.instance_id)
        last = str(start) if start else None
    try:
        cursor = parse_cursor(last)
    except ValueError as exc:
        raise Conflict(f"Last-Event-ID {last!r} is not an event id of this stream") from exc
    return StreamingResponse(
        sse(svc.hub, p, f, cursor or svc.hub.head, svc.wire_cache, lambda: until_revoked(svc, p)),
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
    )


@router.get("/events/stream", response_class=StreamingResponse)
async def stream_events(
    p: Caller,
    svc: Svc,
    instance_id: InstanceQ = None,
    process_id: ProcessQ = None,
    status: StatusQ = None,
    last_event_id: LastId = None,
    after: AfterQ = None,
) -> StreamingResponse:
    """Server-sent events of the workspace's instances and tasks, from now on, or after
    ``Last-Event-ID`` (or ``?after=``) with nothing lost or repeated."""
    f = EventFilter(p.workspace_id, instance_id, process_id, status)
    return await _response(svc, p, f, last_event_id or after)


@router.get("/execution/tasks/stream", response_class=StreamingResponse)
async def stream_tasks(
    p: Caller,
    svc: Svc,
    instance_id: InstanceQ = None,
    process_id: ProcessQ = None,
    status: StatusQ = None,
    last_event_id: LastId = None,
    after: AfterQ = None,
) -> StreamingResponse:
    """Server-sent task updates (the ``Task*`` events) with the same filters and resume."""
    f = EventFilter(p.workspace_id, instance_id, process_id, status, tasks_only=True)
    return await _response(svc, p, f, last_event_id or after)


@router.websocket("/events/ws")
async def events_socket(
    ws: WebSocket,
    instance_id: InstanceQ = None,
    process_id: ProcessQ = None,
    status: StatusQ = None,
    after: AfterQ = None,
) -> None:
    """The same events as ``/events/stream`` as JSON text frames. Authenticate with
    ``?access_token=`` (and ``&workspace=``) or an ``Authorization`` header. The socket is
    closed (1008) when the credentials stop being valid (re-checked every few seconds)."""
    svc = ws.app.state.services
    credential, workspace = credentials(ws)
    try:
        p = await resolve(svc, credential, workspace)
        p.require(Permission.READ)
        cursor = parse_cursor(after) or svc.hub.head
    except (AuthError, Forbidden, RateLimited, ValueError) as exc:
        await ws.close(code=1008, reason=str(exc)[:120])
        return
    await ws.accept()
    f = EventFilter(p.workspace_id, instance_id, process_id, status)

    async def drain_incoming() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    async def forward() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            async for entry in svc.hub.stream(cursor, f):
                await ws.send_text(json.dumps(event_json(entry), separators=(",", ":")))

    async def watch() -> None:
        reason = await until_revoked(svc, p)
        await ws.close(code=1008, reason=f"access revoked: {reason}"[:120])

    # whichever ends first ends all: a client that leaves must not keep the handler (and a
    # graceful shutdown) waiting for the next event
    tasks = {
        asyncio.create_task(drain_incoming()),
        asyncio.create_task(forward()),
        asyncio.create_task(watch()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


events_socket.authenticates = True  # type: ignore[attr-defined]
