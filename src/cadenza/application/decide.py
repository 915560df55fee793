"""Apply the pure scheduler's decisions to an instance until nothing is left to decide."""

from __future__ import annotations

from datetime import datetime

from cadenza.application.batch import Batch, Loaded
from cadenza.application.context import scope_output, template_context
from cadenza.application.nodes.pure import PURE_NODES, runs_inline
from cadenza.application.ports import NodeFailure, TemplateError
from cadenza.domain import events as ev
from cadenza.domain import scheduling as s
from cadenza.domain.definition import Node
from cadenza.domain.durations import DurationError, parse_duration
from cadenza.domain.errors import DomainError
from cadenza.domain.instance import ROOT_SCOPE, Task, child_scope_key
from cadenza.domain.json import JSON
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.status import InstanceStatus

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
            if not _running(lo):
                return
            await _apply(b, lo, d)
    raise RuntimeError(f"instance {lo.inst.id} did not settle")


def _running(lo: Loaded) -> bool:
    return lo.inst.status is InstanceStatus.RUNNING


async def _apply(b: Batch, lo: Loaded, d: s.Decision) -> None:
    inst = lo.inst
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
        _cancel_scope(b, lo, d.scope, "sibling failed")
        inst.record(b.stamp, ev.ScopeClosed(scope=d.scope, status="failed", error=d.error))
    elif isinstance(d, s.FinishOwner):
        _finish_owner(b, lo, d.scope, d.node_id)
    elif isinstance(d, s.FailOwner):
        owner = inst.task_at(d.scope, d.node_id)
        assert owner is not None
        for child in inst.child_scopes(d.scope, d.node_id):
            if child.status == "active":
                _cancel_scope(b, lo, child.key, "another item failed")
                inst.record(b.stamp, ev.ScopeClosed(scope=child.key, status="cancelled"))
        b.fail_task(lo, owner, d.error, retryable=False)
    elif isinstance(d, s.CompleteInstance):
        await _complete(b, lo)
    elif isinstance(d, s.FailInstance):
        fail_instance(b, lo, d.error, d.node_id)


async def _start(b: Batch, lo: Loaded, scope: str, node: Node) -> None:
    inst = lo.inst
    tid = b.deps.new_id()
    execution = NODE_TYPES[node.type].execution
    if execution is Execution.WORKER:
        if b.deps.inline_pure and runs_inline(b.deps.templates, node):
            await _run_pure(b, lo, tid, scope, node)
        else:
            b.schedule_worker(lo, tid, scope, node, 1)
        return
    if execution is Execution.INLINE:
        inst.record(
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
        output: JSON = None
        if node.type == "start":
            sc = inst.scopes[scope]
            output = inst.inputs if scope == ROOT_SCOPE else {"item": sc.item, "index": sc.index}
        inst.record(
            b.stamp, ev.TaskCompleted(task_id=tid, attempt=1, output=output, ports=("out",))
        )
        return
    if node.type == "subprocess":
        b.record_waiting(lo, tid, scope, node)
        await start_control(b, lo, inst.tasks[tid], node)
        return
    # one event per started control node: its detail is known before it is recorded
    try:
        detail = await _control_detail(b, lo, tid, scope, node)
    except _START_ERRORS as exc:
        b.record_waiting(lo, tid, scope, node)
        b.fail_task(
            lo,
            inst.tasks[tid],
            f"{node.type} node {node.id!r} could not start: {exc}",
            retryable=False,
        )
        return
    b.record_waiting(lo, tid, scope, node, detail)
    if node.timeout_s:
        b.add_timer(inst.id, tid, "task_timeout", b.now + node.timeout_s)


async def _run_pure(b: Batch, lo: Loaded, tid: str, scope: str, node: Node) -> None:
    """Compute a pure node here, journaled as a worker would report it: scheduled, then
    completed with its output and ports (or failed, under the node's ``on_error``)."""
    inst = lo.inst
    inst.record(
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
    try:
        result = await PURE_NODES[node.type](b.deps.templates, node, template_context(inst, scope))
    except NodeFailure as exc:
        b.fail_task(lo, inst.tasks[tid], str(exc), retryable=False)
        return
    if (problem := b.deps.definitions.value_problem(result.output, "the output")) is not None:
        error = f"output{problem[0]}: {problem[1]}; it was not stored"
        b.fail_task(lo, inst.tasks[tid], error, retryable=False)
        return
    inst.record(
        b.stamp, ev.TaskCompleted(task_id=tid, attempt=1, output=result.output, ports=result.ports)
    )


async def start_control(b: Batch, lo: Loaded, task: Task, node: Node) -> None:
    """Start a control node whose task is WAITING: set its timers, child or items."""
    inst = lo.inst
    try:
        if node.type == "subprocess":
            detail = await _start_child(b, lo, task, node, template_context(lo.inst, task.scope))
        else:
            detail = await _control_detail(b, lo, task.id, task.scope, node)
    except _START_ERRORS as exc:
        b.fail_task(
            lo, task, f"{node.type} node {node.id!r} could not start: {exc}", retryable=False
        )
        return
    if detail:
        b.record_waiting(lo, task.id, task.scope, node, detail)
    if node.timeout_s:
        b.add_timer(inst.id, task.id, "task_timeout", b.now + node.timeout_s)


_START_ERRORS = (TemplateError, DurationError, DomainError, ValueError)


async def _control_detail(
    b: Batch, lo: Loaded, task_id: str, scope: str, node: Node
) -> dict[str, JSON]:
    inst, cfg = lo.inst, node.config
    ctx = template_context(inst, scope)
    if node.type == "wait":
        if "duration" in cfg:
            fire_at = b.now + parse_duration(await b.deps.templates.render(cfg["duration"], ctx))
        else:
            fire_at = _parse_time(await b.deps.templates.render(cfg.get("until"), ctx))
        b.add_timer(inst.id, task_id, "wait", fire_at)
        return {"fire_at": fire_at}
    if node.type == "approval":
        detail: dict[str, JSON] = {
            "title": await b.deps.templates.render(cfg.get("title", ""), ctx),
            "description": await b.deps.templates.render(cfg.get("description", ""), ctx),
        }
        if "timeout" in cfg:
            timeout_at = b.now + parse_duration(cfg["timeout"])
            detail["timeout_at"] = timeout_at
            b.add_timer(inst.id, task_id, "approval_timeout", timeout_at)
        return detail
    if node.type == "map":
        items = await b.deps.templates.evaluate(str(cfg["items"]), ctx)
        if not isinstance(items, list):
            raise ValueError(f"items must evaluate to a list, got {type(items).__name__}")
        bound = cfg.get("max_items", 10_000)
        if isinstance(bound, int) and len(items) > bound:
            raise ValueError(f"{len(items)} items exceed max_items={bound}")
        if (problem := b.deps.definitions.value_problem(items, "items")) is not None:
            raise ValueError(f"items{problem[0]}: {problem[1]}")
        return {"items": len(items), "values": items}
    return {}  # loop: the scheduler opens the first iteration


async def _start_child(
    b: Batch, lo: Loaded, task: Task, node: Node, ctx: dict[str, object]
) -> dict[str, JSON]:
    from cadenza.domain.commands import StartInstance

    cfg = node.config
    version = cfg.get("version")
    inputs = await b.deps.templates.render(cfg.get("inputs", {}), ctx)
    if not isinstance(inputs, dict):
        raise ValueError("subprocess inputs must render to an object")
    child_id = await b.start_instance(
        StartInstance(
            process_id=str(cfg["process"]),
            inputs=inputs,
            version=version if isinstance(version, int) else None,
            parent_instance_id=lo.inst.id,
            parent_task_id=task.id,
            workspace_id=lo.inst.workspace_id,
            depth=lo.inst.depth + 1,
        )
    )
    lo.inst.record(b.stamp, ev.ChildStarted(task_id=task.id, child_instance_id=child_id))
    return {}


def _parse_time(value: JSON) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError(f"until must be an ISO 8601 time or epoch seconds, got {value!r}")


async def _close_scope(b: Batch, lo: Loaded, scope_key: str) -> None:
    inst = lo.inst
    sc = inst.scopes[scope_key]
    owner = lo.plan.graph_for(inst.scopes[sc.parent].path).nodes[sc.owner]
    ctx = template_context(inst, scope_key)
    stop = False
    try:
        if "output" in owner.config:
            output = await b.deps.templates.render(owner.config["output"], ctx)
        else:
            output = scope_output(inst, scope_key, lo.plan.graph_for(sc.path).leaves)
        if owner.type == "loop":
            stop = bool(
                await b.deps.templates.evaluate(
                    str(owner.config["until"]), {**ctx, "output": output}
                )
            )
    except TemplateError as exc:
        inst.record(b.stamp, ev.ScopeClosed(scope=scope_key, status="failed", error=str(exc)))
        return
    if (problem := b.deps.definitions.value_problem(output, "the body output")) is not None:
        error = f"output{problem[0]}: {problem[1]}; not stored"
        inst.record(b.stamp, ev.ScopeClosed(scope=scope_key, status="failed", error=error))
        return
    inst.record(
        b.stamp, ev.ScopeClosed(scope=scope_key, status="completed", output=output, stop=stop)
    )


def _finish_owner(b: Batch, lo: Loaded, scope: str, node_id: str) -> None:
    inst = lo.inst
    task = inst.task_at(scope, node_id)
    assert task is not None
    children = inst.child_scopes(scope, node_id)
    output: JSON
    if task.node_type == "map":
        output = [c.output for c in children]
    else:
        last = children[-1]
        output = {"iterations": len(children), "last": last.output, "stopped": last.stop}
    if (problem := b.deps.definitions.value_problem(output, "the output")) is not None:
        b.fail_task(lo, task, f"output{problem[0]}: {problem[1]}; not stored", retryable=False)
        return
    inst.record(
        b.stamp,
        ev.TaskCompleted(task_id=task.id, attempt=task.attempt, output=output, ports=("out",)),
    )


def _cancel_scope(b: Batch, lo: Loaded, scope_key: str, reason: str) -> None:
    inst = lo.inst
    nested = {k for k in inst.scopes if k == scope_key or k.startswith(scope_key + "/")}
    for task in inst.active_tasks():
        if task.scope in nested:
            b.cancel_task(lo, task, reason)
    for key in nested - {scope_key}:
        if inst.scopes[key].status == "active":
            inst.record(b.stamp, ev.ScopeClosed(scope=key, status="cancelled"))


async def _complete(b: Batch, lo: Loaded) -> None:
    inst = lo.inst
    try:
        outputs = await b.deps.templates.render(
            lo.plan.definition.outputs, template_context(inst, ROOT_SCOPE)
        )
    except TemplateError as exc:
        fail_instance(b, lo, f"outputs failed to render: {exc}", None)
        return
    out: dict[str, JSON] = outputs if isinstance(outputs, dict) else {"value": outputs}
    if (problem := b.deps.definitions.value_problem(out, "the outputs")) is not None:
        fail_instance(b, lo, f"outputs{problem[0]}: {problem[1]}; not stored", None)
        return
    inst.record(b.stamp, ev.InstanceCompleted(outputs=out))
    b.notify_parent(lo, "completed", dict(out), None)


def fail_instance(b: Batch, lo: Loaded, error: str, node_id: str | None) -> None:
    inst = lo.inst
    for task in inst.active_tasks():
        b.cancel_task(lo, task, "instance failed")
    inst.record(b.stamp, ev.InstanceFailed(error=error, node_id=node_id))
    b.notify_parent(lo, "failed", None, error)
