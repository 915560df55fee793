"""The external worker protocol over HTTP: long-poll for an assignment, report its result.

A worker process registers a ``worker`` agent once, then loops: ``poll`` (which is also its
heartbeat), run the assignment, ``complete`` or ``fail``. ``cadenza.entrypoints.client_http``
implements this loop's transport for ``cadenza.entrypoints.client.WorkerClient``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response, status

from cadenza.application import agent_access as access
from cadenza.application.agent_definitions import AgentNotFound
from cadenza.application.external import AssignmentNotFound
from cadenza.domain.errors import NotFound
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.schemas import Accepted
from cadenza.interfaces.api.schemas_admin import AssignmentOut, CompleteIn, FailIn, PollIn

router = APIRouter(prefix="/api/v1/workers", tags=["workers"])


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (the body has been read: only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _assignment_agent(svc: Svc, p: Caller, assignment_id: str) -> None:
    """Only a caller who may act as the assignment's worker agent may report its result;
    for anyone else the assignment does not exist."""
    try:
        await access.operable(svc.agents, p, await svc.external.agent_of(assignment_id))
    except AgentNotFound as exc:
        raise AssignmentNotFound(f"no open assignment {assignment_id!r}") from exc


@router.post(
    "/poll",
    response_model=AssignmentOut,
    responses={204: {"description": "no assignment arrived within the timeout"}},
)
async def poll(body: PollIn, request: Request, p: Caller, svc: Svc) -> AssignmentOut | Response:
    """Wait up to ``timeout_s`` for an assignment for the worker agent ``agent_id`` whose
    requirements its capabilities cover; 204 when none arrives in time."""
    await access.operable(svc.agents, p, body.agent_id)
    polling = asyncio.ensure_future(
        svc.external.poll(body.agent_id, body.capabilities, body.timeout_s)
    )
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({polling, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not polling.done():
            # The worker gave up (or stopped): stop waiting for it, so that the next
            # assignment goes to a poll that someone still reads.
            polling.cancel()
            await asyncio.wait({polling})
    found = None if polling.cancelled() else polling.result()
    if found is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return AssignmentOut.of(found)


@router.post("/assignments/{assignment_id}/complete")
async def complete(assignment_id: str, body: CompleteIn, p: Caller, svc: Svc) -> Accepted:
    """Report the assignment's output: the task completes with it."""
    try:
        await _assignment_agent(svc, p, assignment_id)
        await svc.external.complete(assignment_id, body.output)
    except AssignmentNotFound as exc:
        raise NotFound(str(exc)) from exc
    return Accepted()


@router.post("/assignments/{assignment_id}/fail")
async def fail(assignment_id: str, body: FailIn, p: Caller, svc: Svc) -> Accepted:
    """Report a failure; with ``retryable`` the task's retry policy may try again."""
    try:
        await _assignment_agent(svc, p, assignment_id)
        await svc.external.fail(assignment_id, body.error, body.retryable)
    except AssignmentNotFound as exc:
        raise NotFound(str(exc)) from exc
    return Accepted()
