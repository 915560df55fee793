"""Apply the pure scheduler's decisions to an instance until nothing is left to decide."""

from __future__ import annotations

from cadenza.application.context import scope_output, template_context
from cadenza.application.engine.batch import Batch
from cadenza.application.engine.control import (
    CONTROL_NODES,
    INLINE_NODES,
    PURE_NODES,
    runs_inline,
    start_control,
)
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.ports import TemplateError
from cadenza.application.ports_nodes import NodeFailure
from cadenza.domain import events as ev
from cadenza.domain import scheduling as s
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.status import InstanceStatus, ScopeStatus
from cadenza.domain.tasks import ROOT_SCOPE, child_scope_key

MAX_PASSES = 100_000  # a safety net: every pass changes state, so this is never reached


async def drive(b: Batch, lo: Loaded) -> None:
    limit = lo.plan.definition.settings.max_concurrency
    for _ in range(MAX_PASSES):
        if lo.inst.status is not InstanceStatus.RUNNING:
            return
        decisions = s.schedule(lo.plan, lo.inst, limit)
        if not decisions:
            return
        for d in decisions:
            if not _running(lo):  # a decision before this one ended the instance
                return
            await _apply(b, lo, d)
    raise RuntimeError(f"instance {lo.inst.id} did not settle")


def _running(lo: Loaded) -> bool:
    return lo.inst.status is InstanceStatus.RUNNING


async def _apply(b: Batch, lo: Loaded, d: s.Decision) -> None:
    inst, policy = lo.inst, b.policy
    if isinstance(d, s.StartNode):
        await _start(b, lo, d.scope, lo.plan.graph_for(inst.scopes[d.scope].path).nodes[d.node_id])
    elif isinstance(d, s.SkipNode):
        node = lo.plan.graph_for(inst.scopes[d.scope].path).nodes[d.node_id]
        inst.record(
            b.stamp,
            ev.TaskSkipped(
                task_id=b.deps.new_id(), scope=d.scope, node_id=node.id, node_type=node.type
            ),
        )
    elif isinstance(d, s.OpenScope):
        owner = inst.task_at(d.parent, d.owner)
        assert owner is not None
        values = owner.detail.get("values")
        item = values[d.index] if isinstance(values, list) and d.index < len(values) else None
        key = child_scope_key(d.parent, d.owner, d.index)
        inst.record(
            b.stamp,
            ev.ScopeOpened(
                scope=key, parent_scope=d.parent, owner_node=d.owner, index=d.index, item=item
            ),
        )
    elif isinstance(d, s.CloseScope):
        await _close_scope(b, lo, d.scope)
    elif isinstance(d, s.FailScope):
        policy.cancel_scope(lo, d.scope, "sibling failed")
        inst.record(
            b.stamp, ev.ScopeClosed(scope=d.scope, status=ScopeStatus.FAILED, error=d.error)
        )
    elif isinstance(d, s.FinishOwner):
        _finish_owner(b, lo, d.scope, d.node_id)
    elif isinstance(d, s.FailOwner):
        owner = inst.task_at(d.scope, d.node_id)
        assert owner is not None
        for child in inst.child_scopes(d.scope, d.node_id):
            if child.status is ScopeStatus.ACTIVE:
                policy.cancel_scope(lo, child.key, "another item failed")
                inst.record(b.stamp, ev.ScopeClosed(scope=child.key, status=ScopeStatus.CANCELLED))
        policy.fail_task(lo, owner, d.error, retryable=False)
    elif isinstance(d, s.CompleteInstance):
        await _complete(b, lo)
    elif isinstance(d, s.FailInstance):
        policy.fail_instance(lo, d.error, d.node_id)


async def _start(b: Batch, lo: Loaded, scope: str, node: Node) -> None:
    execution = NODE_TYPES[node.type].execution
    if execution is Execution.CONTROL:
        await start_control(b, lo, scope, node)
        return
    tid = b.deps.new_id()
    if execution is Execution.WORKER:
        pure = b.deps.inline_pure and runs_inline(b.deps.templates, node)
        if pure and b.inline_step(lo.inst.id):
            await _run_pure(b, lo, tid, scope, node)
        else:
            b.policy.schedule_worker(lo, tid, scope, node, 1)
        return
    inline = INLINE_NODES.get(node.type)
    _record_scheduled(b, lo, tid, scope, node)
    output = inline(lo.inst, scope) if inline is not None else None
    lo.inst.record(b.stamp, ev.TaskCompleted(task_id=tid, attempt=1, output=output, ports=("out",)))


def _record_scheduled(b: Batch, lo: Loaded, tid: str, scope: str, node: Node) -> None:
    lo.inst.record(
        b.stamp,
        ev.TaskScheduled(
            task_id=tid,
            scope=scope,
            node_id=node.id,
            node_type=node.type,
            attempt=1,
            available_at=b.now,
        ),
    )


async def _run_pure(b: Batch, lo: Loaded, tid: str, scope: str, node: Node) -> None:
    """Compute a pure node here, journaled as a worker would report it: scheduled, then
    completed with its output and ports (or failed, under the node's ``on_error``)."""
    inst = lo.inst
    _record_scheduled(b, lo, tid, scope, node)
    try:
        result = await PURE_NODES[node.type](b.deps.templates, node, template_context(inst, scope))
    except NodeFailure as exc:
        b.policy.fail_task(lo, inst.tasks[tid], str(exc), retryable=False)
        return
    if (error := b.deps.definitions.unstorable(result.output, "the output")) is not None:
        b.policy.fail_task(lo, inst.tasks[tid], error, retryable=False)
        return
    inst.record(
        b.stamp,
        ev.TaskCompleted(task_id=tid, attempt=1, output=result.output, ports=result.ports),
    )


async def _close_scope(b: Batch, lo: Loaded, scope_key: str) -> None:
    inst = lo.inst
    sc = inst.scopes[scope_key]
    owner = lo.plan.graph_for(inst.scopes[sc.parent].path).nodes[sc.owner]
    ctx = template_context(inst, scope_key)
    try:
        if "output" in owner.config:
            output = await b.deps.templates.render(owner.config["output"], ctx)
        else:
            output = scope_output(inst, scope_key, lo.plan.graph_for(sc.path).leaves)
        stop = await CONTROL_NODES[owner.type].stops(b, owner, ctx, output)
    except TemplateError as exc:
        inst.record(
            b.stamp, ev.ScopeClosed(scope=scope_key, status=ScopeStatus.FAILED, error=str(exc))
        )
        return
    if (problem := b.deps.definitions.value_problem(output, "the body output")) is not None:
        error = f"output{problem[0]}: {problem[1]}; not stored"
        inst.record(
            b.stamp, ev.ScopeClosed(scope=scope_key, status=ScopeStatus.FAILED, error=error)
        )
        return
    inst.record(
        b.stamp,
        ev.ScopeClosed(scope=scope_key, status=ScopeStatus.COMPLETED, output=output, stop=stop),
    )


def _finish_owner(b: Batch, lo: Loaded, scope: str, node_id: str) -> None:
    inst = lo.inst
    task = inst.task_at(scope, node_id)
    assert task is not None
    output = CONTROL_NODES[task.node_type].body_output(inst.child_scopes(scope, node_id))
    if (problem := b.deps.definitions.value_problem(output, "the output")) is not None:
        error = f"output{problem[0]}: {problem[1]}; not stored"
        b.policy.fail_task(lo, task, error, retryable=False)
        return
    inst.record(
        b.stamp,
        ev.TaskCompleted(task_id=task.id, attempt=task.attempt, output=output, ports=("out",)),
    )


async def _complete(b: Batch, lo: Loaded) -> None:
    inst = lo.inst
    try:
        outputs = await b.deps.templates.render(
            lo.plan.definition.outputs, template_context(inst, ROOT_SCOPE)
        )
    except TemplateError as exc:
        b.policy.fail_instance(lo, f"outputs failed to render: {exc}", None)
        return
    out: dict[str, JSON] = outputs if isinstance(outputs, dict) else {"value": outputs}
    if (problem := b.deps.definitions.value_problem(out, "the outputs")) is not None:
        b.policy.fail_instance(lo, f"outputs{problem[0]}: {problem[1]}; not stored", None)
        return
    inst.record(b.stamp, ev.InstanceCompleted(outputs=out))
    b.policy.notify_parent(lo, "completed", dict(out), None)
