"""Command handlers: each turns one command into events on one instance (inside a batch)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from cadenza.application.batch import Batch, Loaded
from cadenza.application.decide import fail_instance, start_control
from cadenza.application.ports import RELEASED
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.errors import Conflict
from cadenza.domain.instance import Instance, Task
from cadenza.domain.json import JSON
from cadenza.domain.limits import clip
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.status import InstanceStatus, TaskStatus

_APPROVE = {"approve", "approved", "yes"}
_REJECT = {"reject", "rejected", "no"}


def _fenced(b: Batch, task_id: str, token: str, attempt: int | None = None) -> bool:
    """True when ``token`` still holds the lease: a zombie's late report is dropped."""
    lease = b.leases.get(task_id)
    return (
        lease is not None
        and lease.status == TaskStatus.RUNNING.value
        and lease.lease_token == token
        and (attempt is None or lease.attempt == attempt)
    )


def _reported_task(
    b: Batch, lo: Loaded, c: cmd.CompleteTask | cmd.FailTask | cmd.RecordStep
) -> Task | None:
    """The task a worker reports on, if its lease still holds and the task still runs."""
    if not _fenced(b, c.task_id, c.lease_token, c.attempt):
        return None
    task = lo.inst.task(c.task_id)
    if not task.active or lo.inst.status is not InstanceStatus.RUNNING:
        return None
    return task


async def _complete(b: Batch, lo: Loaded, c: cmd.CompleteTask) -> object:
    task = _reported_task(b, lo, c)
    if task is None:
        return "stale"
    problem = _unstorable(b, c.output, "the output") or _unstorable(b, c.usage, "the usage")
    if problem is not None:
        b.fail_task(lo, task, problem, retryable=False)
        return "ok"
    lo.inst.record(
        b.stamp,
        ev.TaskCompleted(
            task_id=task.id, attempt=c.attempt, output=c.output, ports=c.ports, usage=c.usage
        ),
    )
    budget_problem = _over_budget(b, lo)
    if budget_problem:
        fail_instance(b, lo, budget_problem, task.node_id)
    return "ok"


def _unstorable(b: Batch, value: JSON, what: str) -> str | None:
    """Why a result cannot be stored (too deep or too large for every reader), or None."""
    problem = b.deps.definitions.value_problem(value, what)
    if problem is None:
        return None
    path, reason = problem
    where = f" (at {clip(path.lstrip('.'), 200)})" if path else ""
    return f"{reason}{where}; it was not stored"


def _over_budget(b: Batch, lo: Loaded) -> str | None:
    budget = lo.plan.definition.settings.budget
    if not budget:
        return None
    used = usage_totals(lo.inst)
    for key in ("tokens", "cost"):
        limit = budget.get(key)
        if isinstance(limit, int | float) and used[key] > limit:
            return f"budget exceeded: {key} used {used[key]:g} > limit {limit:g} (settings.budget)"
    return None


def usage_totals(inst: Instance) -> dict[str, float]:
    """Tokens and cost of every completed task of an instance."""
    return sum_usage(t.usage for t in inst.tasks.values())


def sum_usage(usages: Iterable[object]) -> dict[str, float]:
    """Prompt and completion tokens, their total and the cost over tasks' usage records
    (anything that is not a mapping, such as a missing record, counts as nothing)."""
    totals = {"prompt_tokens": 0.0, "completion_tokens": 0.0, "tokens": 0.0, "cost": 0.0}
    for usage in usages:
        if not isinstance(usage, Mapping):
            continue
        for key in ("prompt_tokens", "completion_tokens", "cost"):
            value = usage.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] += value
    totals["tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
    return totals


async def _step(b: Batch, lo: Loaded, c: cmd.RecordStep) -> object:
    task = _reported_task(b, lo, c)
    if task is None:
        return "stale"
    if (problem := _unstorable(b, c.step, "the step")) is not None:
        b.fail_task(lo, task, problem, retryable=False)
        return "ok"
    lo.inst.record(
        b.stamp, ev.TaskStepRecorded(task_id=task.id, index=len(task.steps), step=c.step)
    )
    return "ok"


async def _fail(b: Batch, lo: Loaded, c: cmd.FailTask) -> object:
    task = _reported_task(b, lo, c)
    if task is None:
        return "stale"
    b.fail_task(lo, task, c.error, retryable=c.retryable)
    return "ok"


async def _expire(b: Batch, lo: Loaded, c: cmd.ExpireLease) -> object:
    lease = b.leases.get(c.task_id)
    if not _fenced(b, c.task_id, c.lease_token) or lease is None:
        return "stale"
    if lease.lease_expires_at is None or lease.lease_expires_at > b.now:
        return "renewed"
    task = lo.inst.task(c.task_id)
    if not task.active:
        return "stale"
    if lease.lease_expires_at == RELEASED:  # its holder stopped or restarted: not the task's fault
        lo.inst.record(
            b.stamp,
            ev.TaskRequeued(
                task_id=task.id,
                reason=f"released by {lease.leased_to} (stopped or restarted)",
                charged=False,
            ),
        )
        b.lease_existing(lo, task)
        return "released"
    requeues = task.detail.get("requeues", 0)
    if isinstance(requeues, int) and requeues >= b.deps.max_requeues:
        b.fail_task(
            lo,
            task,
            f"lease expired {requeues + 1} times: the worker running it was lost",
            retryable=False,
        )
        return "failed"
    lo.inst.record(
        b.stamp, ev.TaskRequeued(task_id=task.id, reason=f"lease of {lease.leased_to} expired")
    )
    b.lease_existing(lo, task)
    return "requeued"


async def _claims(b: Batch, lo: Loaded | None, c: cmd.RecordClaims) -> object:
    adopted = 0
    for instance_id, task_id, token, _attempt, _expires in c.leases:
        lease = b.leases.get(task_id)
        if not _fenced(b, task_id, token) or lease is None:
            b.release_claimed_slot()
            continue
        owner = await b.load(instance_id)
        task = owner.inst.task(task_id)
        if not task.active or owner.inst.status is not InstanceStatus.RUNNING:
            b.release_claimed_slot()
            continue
        b.adopt_lease(owner, task, lease)  # the slot the claim reserved becomes the task's
        adopted += 1
        await b.drive(owner)
    return adopted


async def _timer(b: Batch, lo: Loaded, c: cmd.FireTimer) -> object:
    b.changes.deleted_timers.append(c.timer_id)
    inst = lo.inst
    if c.kind == "instance_timeout":
        if inst.status is InstanceStatus.RUNNING:
            fail_instance(b, lo, "instance timed out (settings.timeout)", None)
        return "fired"
    task = inst.tasks.get(c.task_id or "")
    if task is None or not task.active or inst.status is not InstanceStatus.RUNNING:
        return "stale"
    if c.kind == "wait" and task.status is TaskStatus.WAITING:
        inst.record(
            b.stamp,
            ev.TaskCompleted(
                task_id=task.id, attempt=task.attempt, output={"fired_at": b.now}, ports=("out",)
            ),
        )
    elif c.kind == "approval_timeout" and task.status is TaskStatus.WAITING:
        b.fail_task(lo, task, "approval timed out without a decision", retryable=False)
    elif c.kind == "task_timeout":
        _abandon(b, lo, task)
        node = b.node_of(lo, task)
        b.fail_task(lo, task, f"timed out after {node.timeout_s}s", retryable=False)
    return "fired"


def _abandon(b: Batch, lo: Loaded, task: Task) -> None:
    """Cancel what a control task started (child instance, body scopes) before it fails."""
    child = task.detail.get("child_instance_id")
    if isinstance(child, str):
        b.follow_ups.append(cmd.CancelInstance(child, "parent task timed out"))
    prefix = f"{task.scope}/{task.node_id}["
    for t in lo.inst.active_tasks():
        if t.scope.startswith(prefix):
            b.cancel_task(lo, t, "owner timed out")
    for sc in list(lo.inst.scopes.values()):
        if sc.key.startswith(prefix) and sc.status == "active":
            lo.inst.record(b.stamp, ev.ScopeClosed(scope=sc.key, status="cancelled"))


async def _signal(b: Batch, lo: Loaded, c: cmd.SignalTask) -> object:
    task = lo.inst.task(c.task_id)
    if task.node_type != "approval" or task.status is not TaskStatus.WAITING:
        raise Conflict(
            f"task {c.task_id} is not an approval waiting for a decision (it is {task.status})"
        )
    decision = str(c.payload.get("decision", "")).lower()
    if decision not in _APPROVE | _REJECT:
        raise Conflict(f"decision must be 'approve' or 'reject', got {decision!r}")
    verdict = "approved" if decision in _APPROVE else "rejected"
    output = {"decision": verdict, "comment": c.payload.get("comment"), "by": c.payload.get("by")}
    lo.inst.record(
        b.stamp,
        ev.TaskCompleted(
            task_id=task.id, attempt=task.attempt, output=output, ports=("out", verdict)
        ),
    )
    return verdict


async def _cancel(b: Batch, lo: Loaded, c: cmd.CancelInstance) -> object:
    inst = lo.inst
    if inst.status not in (InstanceStatus.RUNNING, InstanceStatus.FAILED):
        return "already finished"
    for task in inst.active_tasks():
        b.cancel_task(lo, task, c.reason)
    inst.record(b.stamp, ev.InstanceCancelled(reason=c.reason))
    b.notify_parent(lo, "cancelled", None, c.reason)
    return "cancelled"


async def _retry(b: Batch, lo: Loaded, c: cmd.RetryInstance) -> object:
    inst = lo.inst
    if inst.status is not InstanceStatus.FAILED:
        raise Conflict(
            f"instance {inst.id} is {inst.status}; only a failed instance can be retried"
        )
    if c.task_id is not None:
        task = inst.task(c.task_id)
        if task.status is not TaskStatus.FAILED:
            raise Conflict(f"task {c.task_id} is {task.status}; only a failed task can be retried")
    inst.record(b.stamp, ev.InstanceResumed(reason="retry from failure"))
    for sc in sorted(inst.scopes.values(), key=lambda x: x.key.count("/")):
        if sc.status in ("failed", "cancelled") and inst.scopes[sc.parent].status == "active":
            inst.record(
                b.stamp,
                ev.ScopeOpened(
                    scope=sc.key,
                    parent_scope=sc.parent,
                    owner_node=sc.owner,
                    index=sc.index,
                    item=sc.item,
                ),
            )
    for task in list(inst.tasks.values()):
        if task.status is TaskStatus.CANCELLED or (
            task.status is TaskStatus.FAILED and not task.handled
        ):
            await _rerun(b, lo, task)
    return "resumed"


async def _rerun(b: Batch, lo: Loaded, task: Task) -> None:
    node = b.node_of(lo, task)
    execution = NODE_TYPES[node.type].execution
    if node.body is not None:
        b.record_waiting(lo, task.id, task.scope, node)
        return
    lo.inst.record(
        b.stamp, ev.TaskReset(task_id=task.id, attempt=task.attempt + 1, available_at=b.now)
    )
    if execution is Execution.WORKER:
        b.lease_existing(lo, task)
    elif execution is Execution.CONTROL:
        b.record_waiting(lo, task.id, task.scope, node)
        await start_control(b, lo, task, node)


async def _child(b: Batch, lo: Loaded, c: cmd.ChildFinished) -> object:
    task = lo.inst.tasks.get(c.task_id)
    if (
        task is None
        or task.status is not TaskStatus.WAITING
        or task.detail.get("child_instance_id") != c.child_instance_id
    ):
        return "stale"
    if lo.inst.status is not InstanceStatus.RUNNING:
        return "stale"
    if c.status == "completed":
        lo.inst.record(
            b.stamp,
            ev.TaskCompleted(
                task_id=task.id, attempt=task.attempt, output=c.outputs, ports=("out",)
            ),
        )
    else:
        b.fail_task(
            lo, task, f"subprocess {c.child_instance_id} {c.status}: {c.error}", retryable=False
        )
    return c.status


_HANDLERS: dict[type, Callable[[Batch, Loaded, object], Awaitable[object]]] = {
    cmd.CompleteTask: _complete,  # type: ignore[dict-item]
    cmd.FailTask: _fail,  # type: ignore[dict-item]
    cmd.RecordStep: _step,  # type: ignore[dict-item]
    cmd.ExpireLease: _expire,  # type: ignore[dict-item]
    cmd.FireTimer: _timer,  # type: ignore[dict-item]
    cmd.SignalTask: _signal,  # type: ignore[dict-item]
    cmd.CancelInstance: _cancel,  # type: ignore[dict-item]
    cmd.RetryInstance: _retry,  # type: ignore[dict-item]
    cmd.ChildFinished: _child,  # type: ignore[dict-item]
}


async def handle(b: Batch, lo: Loaded | None, c: cmd.Command) -> object:
    if isinstance(c, cmd.RecordClaims):
        return await _claims(b, lo, c)
    assert lo is not None
    return await _HANDLERS[type(c)](b, lo, c)
