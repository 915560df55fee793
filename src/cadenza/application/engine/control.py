"""Node kinds the engine runs itself: one entry per kind, chosen by the node's type.

``CONTROL_NODES`` holds the control kinds (wait, approval, map, loop, subprocess): what each
does when it starts, when one of its timers fires, when a signal or its child's end arrives
and when one of its body scopes closes. ``INLINE_NODES`` holds the output of the inline
kinds (start, end) and ``PURE_NODES`` (from ``nodes/pure.py``) the pure data kinds that may
run inside the decision step. Nothing else in the engine branches on a node's type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from cadenza.application.context import template_context
from cadenza.application.engine.batch import Batch
from cadenza.application.engine.start import start_instance
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.nodes.pure import PURE_NODES, PureNode, runs_inline
from cadenza.application.ports import TemplateError
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.definition import Node
from cadenza.domain.durations import DurationError, parse_duration
from cadenza.domain.errors import Conflict, DomainError
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.tasks import ROOT_SCOPE, Scope, Task
from cadenza.domain.timers import NODE_TIMERS, TimerKind

__all__ = ["CONTROL_NODES", "INLINE_NODES", "PURE_NODES", "PureNode", "runs_inline"]

START_ERRORS = (TemplateError, DurationError, DomainError, ValueError)
_APPROVE = {"approve", "approved", "yes"}
_REJECT = {"reject", "rejected", "no"}


class ControlNode:
    """A control kind. The defaults: nothing to prepare, no timer, signal, child or body."""

    timers: frozenset[TimerKind] = frozenset()  # kinds of timer it sets for itself
    takes_signals = False
    waits_first = False  # its task is journaled waiting before ``start`` (a child needs it)

    async def start(self, b: Batch, lo: Loaded, task_id: str, scope: str, node: Node) -> JSONObject:
        """Prepare the task (timers, child, items); returns the detail it waits with.
        Raises one of ``START_ERRORS`` when the node cannot start."""
        return {}

    def on_timer(self, b: Batch, lo: Loaded, task: Task, kind: TimerKind) -> None:
        """One of ``timers`` fired while the task waits."""

    def on_signal(self, b: Batch, lo: Loaded, task: Task, payload: JSONObject) -> str:
        raise Conflict(f"task {task.id} takes no signal")

    def on_child(self, b: Batch, lo: Loaded, task: Task, c: cmd.ChildFinished) -> None:
        raise Conflict(f"task {task.id} started no child")

    async def stops(self, b: Batch, owner: Node, ctx: dict[str, object], output: JSON) -> bool:
        """After a body scope closed with ``output``: whether no further one opens."""
        return False

    def body_output(self, children: list[Scope]) -> JSON:
        """The owner's output once its body scopes are done."""
        raise NotImplementedError


class _Wait(ControlNode):
    timers = NODE_TIMERS["wait"]

    async def start(self, b: Batch, lo: Loaded, task_id: str, scope: str, node: Node) -> JSONObject:
        cfg, ctx = node.config, template_context(lo.inst, scope)
        if "duration" in cfg:
            fire_at = b.now + parse_duration(await b.deps.templates.render(cfg["duration"], ctx))
        else:
            fire_at = _parse_time(await b.deps.templates.render(cfg.get("until"), ctx))
        b.uow.add_timer(lo.inst.id, task_id, TimerKind.WAIT, fire_at)
        return {"fire_at": fire_at}

    def on_timer(self, b: Batch, lo: Loaded, task: Task, kind: TimerKind) -> None:
        lo.inst.record(
            b.stamp,
            ev.TaskCompleted(
                task_id=task.id, attempt=task.attempt, output={"fired_at": b.now}, ports=("out",)
            ),
        )


class _Approval(ControlNode):
    timers = NODE_TIMERS["approval"]
    takes_signals = True

    async def start(self, b: Batch, lo: Loaded, task_id: str, scope: str, node: Node) -> JSONObject:
        cfg, ctx = node.config, template_context(lo.inst, scope)
        detail: JSONObject = {
            "title": await b.deps.templates.render(cfg.get("title", ""), ctx),
            "description": await b.deps.templates.render(cfg.get("description", ""), ctx),
        }
        if "timeout" in cfg:
            timeout_at = b.now + parse_duration(cfg["timeout"])
            detail["timeout_at"] = timeout_at
            b.uow.add_timer(lo.inst.id, task_id, TimerKind.APPROVAL_TIMEOUT, timeout_at)
        return detail

    def on_timer(self, b: Batch, lo: Loaded, task: Task, kind: TimerKind) -> None:
        b.policy.fail_task(lo, task, "approval timed out without a decision", retryable=False)

    def on_signal(self, b: Batch, lo: Loaded, task: Task, payload: JSONObject) -> str:
        decision = str(payload.get("decision", "")).lower()
        if decision not in _APPROVE | _REJECT:
            raise Conflict(f"decision must be 'approve' or 'reject', got {decision!r}")
        verdict = "approved" if decision in _APPROVE else "rejected"
        output = {"decision": verdict, "comment": payload.get("comment"), "by": payload.get("by")}
        lo.inst.record(
            b.stamp,
            ev.TaskCompleted(
                task_id=task.id, attempt=task.attempt, output=output, ports=("out", verdict)
            ),
        )
        return verdict


class _Map(ControlNode):
    async def start(self, b: Batch, lo: Loaded, task_id: str, scope: str, node: Node) -> JSONObject:
        cfg = node.config
        items = await b.deps.templates.evaluate(str(cfg["items"]), template_context(lo.inst, scope))
        if not isinstance(items, list):
            raise ValueError(f"items must evaluate to a list, got {type(items).__name__}")
        bound = cfg.get("max_items", 10_000)
        if isinstance(bound, int) and len(items) > bound:
            raise ValueError(f"{len(items)} items exceed max_items={bound}")
        if (problem := b.deps.definitions.value_problem(items, "items")) is not None:
            raise ValueError(f"items{problem[0]}: {problem[1]}")
        return {"items": len(items), "values": items}

    def body_output(self, children: list[Scope]) -> JSON:
        return [c.output for c in children]


class _Loop(ControlNode):
    # starts with nothing to prepare: the scheduler opens the first iteration

    async def stops(self, b: Batch, owner: Node, ctx: dict[str, object], output: JSON) -> bool:
        until = str(owner.config["until"])
        return bool(await b.deps.templates.evaluate(until, {**ctx, "output": output}))

    def body_output(self, children: list[Scope]) -> JSON:
        last = children[-1]
        return {"iterations": len(children), "last": last.output, "stopped": last.stop}


class _Subprocess(ControlNode):
    waits_first = True

    async def start(self, b: Batch, lo: Loaded, task_id: str, scope: str, node: Node) -> JSONObject:
        cfg = node.config
        version = cfg.get("version")
        inputs = await b.deps.templates.render(
            cfg.get("inputs", {}), template_context(lo.inst, scope)
        )
        if not isinstance(inputs, dict):
            raise ValueError("subprocess inputs must render to an object")
        child_id = await start_instance(
            b,
            cmd.StartInstance(
                process_id=str(cfg["process"]),
                inputs=inputs,
                version=version if isinstance(version, int) else None,
                parent_instance_id=lo.inst.id,
                parent_task_id=task_id,
                workspace_id=lo.inst.workspace_id,
                depth=lo.inst.depth + 1,
                trace_context=lo.trace_context,  # the child's tasks join the parent's trace
            ),
        )
        lo.inst.record(b.stamp, ev.ChildStarted(task_id=task_id, child_instance_id=child_id))
        return {}

    def on_child(self, b: Batch, lo: Loaded, task: Task, c: cmd.ChildFinished) -> None:
        if c.status == "completed":
            lo.inst.record(
                b.stamp,
                ev.TaskCompleted(
                    task_id=task.id, attempt=task.attempt, output=c.outputs, ports=("out",)
                ),
            )
        else:
            error = f"subprocess {c.child_instance_id} {c.status}: {c.error}"
            b.policy.fail_task(lo, task, error, retryable=False)


CONTROL_NODES: Mapping[str, ControlNode] = {
    "wait": _Wait(),
    "approval": _Approval(),
    "map": _Map(),
    "loop": _Loop(),
    "subprocess": _Subprocess(),
}


def _scope_input(inst: Instance, scope: str) -> JSON:
    """A start node's output: the instance's inputs, or a body scope's item and index."""
    if scope == ROOT_SCOPE:
        return inst.inputs
    sc = inst.scopes[scope]
    return {"item": sc.item, "index": sc.index}


INLINE_NODES: Mapping[str, Callable[[Instance, str], JSON]] = {
    "start": _scope_input,
    "end": lambda inst, scope: None,
}


def record_waiting(
    b: Batch, lo: Loaded, task_id: str, scope: str, node: Node, detail: JSONObject | None = None
) -> None:
    """A control node's task waits (on a timer, a signal, a child or its body)."""
    lo.inst.record(
        b.stamp,
        ev.TaskWaiting(
            task_id=task_id, scope=scope, node_id=node.id, node_type=node.type, detail=detail or {}
        ),
    )


async def start_control(b: Batch, lo: Loaded, scope: str, node: Node) -> None:
    """Start a control node that the scheduler reached: one waiting event with its detail."""
    kind = CONTROL_NODES[node.type]
    tid = b.deps.new_id()
    if kind.waits_first:
        record_waiting(b, lo, tid, scope, node)
        await restart_control(b, lo, lo.inst.tasks[tid], node)
        return
    try:
        detail = await kind.start(b, lo, tid, scope, node)
    except START_ERRORS as exc:
        record_waiting(b, lo, tid, scope, node)
        error = f"{node.type} node {node.id!r} could not start: {exc}"
        b.policy.fail_task(lo, lo.inst.tasks[tid], error, retryable=False)
        return
    record_waiting(b, lo, tid, scope, node, detail)
    if node.timeout_s:
        b.uow.add_timer(lo.inst.id, tid, TimerKind.TASK_TIMEOUT, b.now + node.timeout_s)


async def restart_control(b: Batch, lo: Loaded, task: Task, node: Node) -> None:
    """Start a control node whose task is WAITING already: set its timers, child or items."""
    try:
        detail = await CONTROL_NODES[node.type].start(b, lo, task.id, task.scope, node)
    except START_ERRORS as exc:
        error = f"{node.type} node {node.id!r} could not start: {exc}"
        b.policy.fail_task(lo, task, error, retryable=False)
        return
    if detail:
        record_waiting(b, lo, task.id, task.scope, node, detail)
    if node.timeout_s:
        b.uow.add_timer(lo.inst.id, task.id, TimerKind.TASK_TIMEOUT, b.now + node.timeout_s)


def _parse_time(value: JSON) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError(f"until must be an ISO 8601 time or epoch seconds, got {value!r}")
