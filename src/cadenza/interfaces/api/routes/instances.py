"""Process instances and tasks: start, list, inspect, cancel, retry, signal, approve."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Response, status

from cadenza.application.ports_api import InstanceFilter, TaskFilter
from cadenza.application.usage import sum_usage
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSONObject
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.schemas import (
    Accepted,
    CancelIn,
    DecisionIn,
    EventOut,
    InstanceDetailOut,
    InstanceOut,
    InstancePage,
    SignalIn,
    StartIn,
    TaskOut,
)

router = APIRouter(prefix="/api/v1", tags=["instances"])
# a page cursor: ``<created_at float>|<id>`` as the previous page returned it
CURSOR = r"^[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?\|\w+$"


@router.post("/processes/instances", status_code=status.HTTP_201_CREATED)
async def start_instance(
    body: StartIn,
    p: Caller,
    svc: Svc,
    idempotency_key: Annotated[str | None, Header(max_length=160)] = None,
) -> InstanceOut:
    """Start an instance of the latest published version (or ``version``). The same
    idempotency key (body or ``Idempotency-Key`` header) returns the same instance."""
    key = body.idempotency_key or idempotency_key
    iid = await svc.processes.start(p, body.process_id, body.inputs, body.version, key)
    return InstanceOut.of(await svc.processes.instance(p, iid))


@router.get("/processes/instances")
async def list_instances(
    p: Caller,
    svc: Svc,
    status: InstanceStatus | None = None,
    process_id: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=64, description="id prefix")] = None,
    cursor: Annotated[str | None, Query(max_length=120, pattern=CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> InstancePage:
    f = InstanceFilter(None if status is None else status.value, process_id, q, cursor, limit)
    rows, next_cursor = await svc.processes.instances(p, f)
    return InstancePage(items=[InstanceOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/processes/instances/{instance_id}")
async def get_instance(
    instance_id: str,
    p: Caller,
    svc: Svc,
    expand: Annotated[
        Literal["payloads"] | None,
        Query(description="payloads: offloaded values in full instead of their markers"),
    ] = None,
) -> InstanceDetailOut:
    """The instance with every task: inputs, outputs, errors, attempts, tokens and cost.
    Payloads over the offload threshold are markers (docs/api.md) unless
    ``expand=payloads``."""
    row = await svc.processes.instance(p, instance_id)
    tasks = await svc.processes.tasks(p, TaskFilter(instance_id=instance_id, limit=10_000))
    tasks.reverse()  # oldest first reads as a timeline
    if expand == "payloads" and svc.payloads is not None:
        columns = ("output", "detail", "error_payload")
        loaded = await svc.payloads.expand(
            p,
            instance_id,
            [
                row.inputs,
                row.outputs,
                row.error_payload,
                *(t.get(c) for t in tasks for c in columns),
            ],
        )
        inputs, outputs, error, *rest = loaded
        row = replace(row, inputs=inputs, outputs=outputs)  # type: ignore[arg-type]
        if isinstance(error, str):  # an offloaded error's whole text
            row = replace(row, error=error, error_payload=None)
        for i, t in enumerate(tasks):
            t["output"], t["detail"], error = rest[3 * i : 3 * i + 3]
            if isinstance(error, str):
                t["error"], t["error_payload"] = error, None
    return InstanceDetailOut(
        **InstanceOut.of(row).model_dump(),
        tasks=[TaskOut.of(t) for t in tasks],
        usage=dict(sum_usage(t.get("usage") for t in tasks)),
    )


@router.get("/processes/instances/{instance_id}/events")
async def instance_events(instance_id: str, p: Caller, svc: Svc) -> list[EventOut]:
    """The instance's journal, in order."""
    journal = await svc.processes.journal(p, instance_id)
    return [
        EventOut(seq=s, id=e.event_id, type=e.type_name, occurred_at=e.occurred_at, data=e.data())
        for s, e in journal
    ]


@router.get(
    "/processes/instances/{instance_id}/payloads/{sha256}",
    responses={200: {"content": {"application/json": {}}, "description": "the JSON value"}},
    response_class=Response,
)
async def instance_payload(
    instance_id: str,
    sha256: Annotated[str, Path(pattern="^[0-9a-f]{64}$")],
    p: Caller,
    svc: Svc,
) -> Response:
    """The whole value of an offloaded payload of this instance (docs/payloads.md): reads
    show it as a marker ``{"$cadenza": "blob", "ref", "sha256", "size", "preview"}``; this
    route returns the JSON value its ``sha256`` names. 404 for a hash that is not this
    instance's (another workspace's included)."""
    if svc.payloads is None:
        raise NotFound(f"payload {sha256!r} of instance {instance_id!r} not found")
    data = await svc.payloads.load(p, instance_id, sha256)
    return Response(content=data, media_type="application/json")


@router.post("/processes/instances/{instance_id}/cancel")
async def cancel_instance(
    instance_id: str, p: Caller, svc: Svc, body: CancelIn | None = None
) -> Accepted:
    """Cancel the instance and its subprocesses."""
    result = await svc.processes.cancel(p, instance_id, body.reason if body else None)
    return Accepted(result=result)


@router.post("/processes/instances/{instance_id}/retry")
async def retry_instance(instance_id: str, p: Caller, svc: Svc) -> Accepted:
    """Resume a failed instance from its failed nodes, reusing every recorded output."""
    return Accepted(result=await svc.processes.retry(p, instance_id))


@router.post("/processes/instances/{instance_id}/signal")
async def signal_instance(instance_id: str, body: SignalIn, p: Caller, svc: Svc) -> Accepted:
    """Deliver a decision to a waiting task of this instance."""
    task = await svc.processes.task(p, body.task_id)
    if task["instance_id"] != instance_id:
        await svc.processes.instance(p, instance_id)  # 404 for an unknown instance
        raise NotFound(f"task {body.task_id!r} is not a task of instance {instance_id!r}")
    return Accepted(result=await svc.processes.signal(p, body.task_id, body.payload))


@router.get("/execution/tasks")
async def list_tasks(
    p: Caller,
    svc: Svc,
    status: TaskStatus | None = None,
    instance_id: Annotated[str | None, Query(max_length=40)] = None,
    node_type: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TaskOut]:
    f = TaskFilter(None if status is None else status.value, instance_id, node_type, limit)
    rows = await svc.processes.tasks(p, f)
    return [TaskOut.of(t) for t in rows]


@router.get("/execution/approvals")
async def list_approvals(p: Caller, svc: Svc) -> list[TaskOut]:
    """Approval tasks waiting for a decision: the inbox."""
    rows = await svc.processes.tasks(p, TaskFilter(TaskStatus.WAITING.value, None, "approval", 500))
    return [TaskOut.of(t) for t in rows]


@router.get("/execution/tasks/{task_id}")
async def get_task(task_id: str, p: Caller, svc: Svc) -> TaskOut:
    return TaskOut.of(await svc.processes.task(p, task_id))


@router.post("/execution/tasks/{task_id}/retry")
async def retry_task(task_id: str, p: Caller, svc: Svc) -> Accepted:
    """Retry one failed task (and what its failure cancelled)."""
    return Accepted(result=await svc.processes.retry_task(p, task_id))


@router.post("/execution/tasks/{task_id}/approve")
async def approve_task(
    task_id: str, p: Caller, svc: Svc, body: DecisionIn | None = None
) -> Accepted:
    payload: JSONObject = {"decision": "approve", "comment": body.comment if body else None}
    return Accepted(result=await svc.processes.signal(p, task_id, payload))


@router.post("/execution/tasks/{task_id}/reject")
async def reject_task(
    task_id: str, p: Caller, svc: Svc, body: DecisionIn | None = None
) -> Accepted:
    payload: JSONObject = {"decision": "reject", "comment": body.comment if body else None}
    return Accepted(result=await svc.processes.signal(p, task_id, payload))
