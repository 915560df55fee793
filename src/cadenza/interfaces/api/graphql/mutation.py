"""Mutations: start and cancel instances, decide approvals. Permissions come from the
use cases (``Processes``), exactly as for the REST routes."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from cadenza.domain.json import JSONObject
from cadenza.interfaces.api.graphql.context import Info
from cadenza.interfaces.api.graphql.cost import costly
from cadenza.interfaces.api.graphql.errors import BadInput
from cadenza.interfaces.api.graphql.query import check_range, check_text
from cadenza.interfaces.api.graphql.types import Instance, Task


async def _start_instance(
    info: Info,
    process_id: strawberry.ID,
    inputs: JSON | None = None,
    version: int | None = None,
    idempotency_key: str | None = None,
) -> Instance:
    check_text("processId", process_id, 64)
    check_text("idempotencyKey", idempotency_key, 160)
    if version is not None:
        check_range("version", version, 1, 2**31 - 1)
    if inputs is not None and not isinstance(inputs, dict):
        raise BadInput("inputs: a JSON object")
    ctx = info.context
    p, processes = ctx.caller, ctx.services.processes
    iid = await processes.start(p, process_id, dict(inputs or {}), version, idempotency_key)
    return Instance.of(await processes.instance(p, iid))


async def _cancel_instance(info: Info, id: strawberry.ID, reason: str | None = None) -> Instance:
    check_text("id", id, 40)
    check_text("reason", reason, 500)
    ctx = info.context
    await ctx.services.processes.cancel(ctx.caller, id, reason)
    return Instance.of(await ctx.services.processes.instance(ctx.caller, id))


async def _decide(info: Info, task_id: str, decision: str, comment: str | None) -> Task:
    check_text("taskId", task_id, 40)
    check_text("comment", comment, 2000)
    ctx = info.context
    payload: JSONObject = {"decision": decision, "comment": comment}
    await ctx.services.processes.signal(ctx.caller, task_id, payload)
    return Task.of(await ctx.services.processes.task(ctx.caller, task_id))


async def _approve_task(info: Info, task_id: strawberry.ID, comment: str | None = None) -> Task:
    return await _decide(info, task_id, "approve", comment)


async def _reject_task(info: Info, task_id: strawberry.ID, comment: str | None = None) -> Task:
    return await _decide(info, task_id, "reject", comment)


@strawberry.type
class Mutation:
    start_instance: Instance = strawberry.mutation(
        resolver=costly(_start_instance),
        description="Start an instance of the latest published version (or `version`); "
        "the same `idempotencyKey` returns the same instance.",
    )
    cancel_instance: Instance = strawberry.mutation(
        resolver=costly(_cancel_instance), description="Cancel an instance and its subprocesses."
    )
    approve_task: Task = strawberry.mutation(
        resolver=costly(_approve_task), description="Approve a waiting approval task."
    )
    reject_task: Task = strawberry.mutation(
        resolver=costly(_reject_task), description="Reject a waiting approval task."
    )
