"""The pure scheduling function: (plan, instance state) -> decisions.

It never mutates anything. The engine applies the decisions (recording events), then asks
again, until there is nothing left to decide. Rules (DESIGN §4):
- a node runs when all incoming edges are resolved and one is taken (join all), or when the
  first taken edge arrives (join any); a node whose edges all resolve untaken is skipped,
  so skips propagate;
- an unhandled failure fails its scope (the root scope: the instance);
- a scope whose nodes are all terminal closes; map/loop owners open and close child scopes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.domain.definition import Edge, Join
from cadenza.domain.instance import Instance
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.plan import ANY_OUTCOME, GraphPlan, Plan
from cadenza.domain.status import InstanceStatus, ScopeStatus, TaskStatus
from cadenza.domain.tasks import ROOT_SCOPE, Scope, Task, child_scope_key

DEFAULT_MAP_CONCURRENCY = 10


@dataclass(frozen=True)
class StartNode:
    scope: str
    node_id: str


@dataclass(frozen=True)
class SkipNode:
    scope: str
    node_id: str


@dataclass(frozen=True)
class OpenScope:
    parent: str
    owner: str
    index: int


@dataclass(frozen=True)
class CloseScope:
    """All nodes of a child scope are terminal and none failed unhandled."""

    scope: str


@dataclass(frozen=True)
class FailScope:
    scope: str
    error: str


@dataclass(frozen=True)
class FinishOwner:
    """Every child scope of a map/loop node is closed (or the loop should stop)."""

    scope: str
    node_id: str


@dataclass(frozen=True)
class FailOwner:
    scope: str
    node_id: str
    error: str


@dataclass(frozen=True)
class CompleteInstance:
    pass


@dataclass(frozen=True)
class FailInstance:
    error: str
    node_id: str | None


Decision = (
    StartNode
    | SkipNode
    | OpenScope
    | CloseScope
    | FailScope
    | FinishOwner
    | FailOwner
    | CompleteInstance
    | FailInstance
)

_PENDING, _TAKEN, _NOT_TAKEN = 0, 1, 2


_DONE = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
)
# terminal and never a failure to report: a scope pass skips these nodes at once
_SETTLED = frozenset({TaskStatus.COMPLETED, TaskStatus.SKIPPED, TaskStatus.CANCELLED})


def _edge_state(task: Task | None, edge: Edge) -> int:
    if task is None or task.status not in _DONE:
        return _PENDING
    if task.status is TaskStatus.SKIPPED or task.status is TaskStatus.CANCELLED:
        return _NOT_TAKEN
    if edge.port == ANY_OUTCOME:
        return _TAKEN if task.status is TaskStatus.COMPLETED or task.handled else _NOT_TAKEN
    return _TAKEN if edge.port in task.ports else _NOT_TAKEN


def schedule(plan: Plan, inst: Instance, max_concurrency: int | None = None) -> list[Decision]:
    """Everything that can be decided now for a running instance."""
    if inst.status is not InstanceStatus.RUNNING:
        return []
    decisions: list[Decision] = []
    budget = None
    if max_concurrency is not None:  # counted only when bounded: a pass over every task
        active = sum(
            1 for t in inst.tasks.values() if t.active and t.node_type not in ("map", "loop")
        )
        budget = max(0, max_concurrency - active)
    for scope in list(inst.scopes.values()):
        if scope.status is not ScopeStatus.ACTIVE:
            continue
        graph = plan.graph_for(scope.path)
        budget = _schedule_scope(graph, inst, scope, decisions, budget)
    return decisions


def _schedule_scope(
    graph: GraphPlan, inst: Instance, scope: Scope, out: list[Decision], budget: int | None
) -> int | None:
    all_terminal = True
    key, by_key, tasks = scope.key, inst.by_key, inst.tasks  # the hot loop: no calls per node
    for node_id in graph.order:
        tid = by_key.get((key, node_id))
        task = None if tid is None else tasks[tid]
        if task is not None:
            if task.status in _SETTLED:  # the common case on a long chain: nothing to decide
                continue
            if task.status is TaskStatus.FAILED and not task.handled:
                if scope.key == ROOT_SCOPE:
                    out.append(FailInstance(f"node {node_id!r} failed: {task.error}", node_id))
                else:
                    out.append(FailScope(scope.key, f"node {node_id!r} failed: {task.error}"))
                return budget
            if task.active:
                all_terminal = False
                if task.status is TaskStatus.WAITING and graph.nodes[node_id].body is not None:
                    _schedule_owner(graph, inst, scope, node_id, out)
            continue
        all_terminal = False
        state = _readiness(graph, inst, scope.key, node_id)
        if state == _NOT_TAKEN:
            out.append(SkipNode(scope.key, node_id))
        elif state == _TAKEN:
            needs_slot = NODE_TYPES[graph.nodes[node_id].type].execution is not Execution.INLINE
            if needs_slot and budget is not None:
                if budget <= 0:
                    continue
                budget -= 1
            out.append(StartNode(scope.key, node_id))
    if all_terminal:
        if scope.key == ROOT_SCOPE:
            out.append(CompleteInstance())
        else:
            out.append(CloseScope(scope.key))
    return budget


def _readiness(graph: GraphPlan, inst: Instance, scope: str, node_id: str) -> int:
    incoming = graph.incoming[node_id]
    if not incoming:
        return _TAKEN
    # early exits: a wide join waiting on its first branch costs one lookup, not N
    any_join = graph.nodes[node_id].join is Join.ANY
    pending = taken = False
    by_key, tasks = inst.by_key, inst.tasks
    for e in incoming:
        tid = by_key.get((scope, e.source))
        state = _edge_state(None if tid is None else tasks[tid], e)
        if state == _PENDING:
            if not any_join:
                return _PENDING
            pending = True
        elif state == _TAKEN:
            if any_join:
                return _TAKEN
            taken = True
    if pending:
        return _PENDING
    return _TAKEN if taken else _NOT_TAKEN


def _schedule_owner(
    graph: GraphPlan, inst: Instance, scope: Scope, node_id: str, out: list[Decision]
) -> None:
    node = graph.nodes[node_id]
    task = inst.task_at(scope.key, node_id)
    assert task is not None
    children = inst.child_scopes(scope.key, node_id)
    failed = [c for c in children if c.status is ScopeStatus.FAILED]
    if failed:
        out.append(
            FailOwner(scope.key, node_id, f"{node_id}[{failed[0].index}]: {failed[0].error}")
        )
        return
    open_now = sum(1 for c in children if c.status is ScopeStatus.ACTIVE)
    if node.type == "map":
        count = task.detail.get("items")
        if not isinstance(count, int):
            return  # items not resolved yet
        limit = node.config.get("concurrency", DEFAULT_MAP_CONCURRENCY)
        limit = limit if isinstance(limit, int) else DEFAULT_MAP_CONCURRENCY
        for index in range(len(children), min(count, len(children) + max(0, limit - open_now))):
            out.append(OpenScope(scope.key, node_id, index))
        if len(children) == count and open_now == 0:
            out.append(FinishOwner(scope.key, node_id))
        return
    # loop: one iteration at a time
    if open_now:
        return
    max_iter = node.config.get("max_iterations")
    bound = max_iter if isinstance(max_iter, int) else 1
    if children and (children[-1].stop or len(children) >= bound):
        out.append(FinishOwner(scope.key, node_id))
    else:
        out.append(OpenScope(scope.key, node_id, len(children)))


def scope_key(parent: str, owner: str, index: int) -> str:
    return child_scope_key(parent, owner, index)
