"""Command handlers: each turns one command into events on one instance (inside a batch).

``apply_all`` runs one group commit's commands: lock what they name, apply each through
the table at the bottom, then decide every instance they touched until nothing is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

from cadenza.application.definitions import InputsInvalid
from cadenza.application.engine import decide
from cadenza.application.engine.batch import Batch
from cadenza.application.engine.control import CONTROL_NODES, record_waiting, restart_control
from cadenza.application.engine.leases import expire, fenced
from cadenza.application.engine.start import start_instance
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.usage import over_budget
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.commands import Outcome
from cadenza.domain.errors import Conflict, DomainError
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.status import InstanceStatus, ScopeStatus, TaskStatus
from cadenza.domain.tasks import Task
from cadenza.domain.timers import TimerKind

Result = Outcome | str | int  # an outcome; a started instance's id; the claims adopted
Expected = Result | DomainError | InputsInvalid  # raised before any change: the batch goes on


async def apply_all(b: Batch, commands: Sequence[cmd.Command]) -> list[Expected]:
    """Apply one group commit's commands, then decide until quiet; one result per command."""
    await b.uow.prelock(commands)
    results: list[Expected] = []
    for c in commands:
        try:
            results.append(await _apply(b, c))
        except (DomainError, InputsInvalid) as exc:
            results.append(exc)
    await _settle(b)
    return results


async def _apply(b: Batch, command: cmd.Command) -> Result:
    result = await _apply_one(b, command)
    follow_ups = b.policy.follow_ups
    while follow_ups:
        await _apply_one(b, follow_ups.popleft())
    return result


async def _apply_one(b: Batch, c: cmd.Command) -> Result:
    if isinstance(c, cmd.StartInstance):
        return await start_instance(b, c)
    if isinstance(c, cmd.RecordClaims):
        return await _claims(b, c)
    lo = await b.uow.load(c.instance_id)
    result = await _HANDLERS[type(c)](b, lo, c)
    b.drive(lo)
    return result


async def _settle(b: Batch) -> None:
    """Decide every touched instance, then apply what that caused, until quiet."""
    follow_ups = b.policy.follow_ups
    while b.dirty or follow_ups:
        while follow_ups:
            await _apply_one(b, follow_ups.popleft())
        dirty = list(b.dirty.values())
        b.dirty.clear()
        for lo in dirty:
            await decide.drive(b, lo)


# ---- a worker's reports ------------------------------------------------------------------
def _reported_task(
    b: Batch, lo: Loaded, c: cmd.CompleteTask | cmd.FailTask | cmd.RecordStep
) -> Task | None:
    """The task a worker reports on, if its lease still holds and the task still runs."""
    if not fenced(b, c.task_id, c.lease_token, c.attempt):
        return None
    task = lo.inst.task(c.task_id)
    if not task.active or lo.inst.status is not InstanceStatus.RUNNING:
        return None
    return task


async def _complete(b: Batch, lo: Loaded, c: cmd.CompleteTask) -> Outcome:
    task = _reported_task(b, lo, c)
    if task is None:
        return Outcome.STALE
    unstorable = b.deps.definitions.unstorable
    problem = unstorable(c.output, "the output") or unstorable(c.usage, "the usage")
    if problem is not None:
        b.policy.fail_task(lo, task, problem, retryable=False)
        return Outcome.OK
    lo.inst.record(
        b.stamp,
        ev.TaskCompleted(
            task_id=task.id, attempt=c.attempt, output=c.output, ports=c.ports, usage=c.usage
        ),
    )
    budget_problem = over_budget(lo.plan.definition.settings.budget, lo.inst)
    if budget_problem:
        b.policy.fail_instance(lo, budget_problem, task.node_id)
    return Outcome.OK


async def _step(b: Batch, lo: Loaded, c: cmd.RecordStep) -> Outcome:
    task = _reported_task(b, lo, c)
    if task is None:
        return Outcome.STALE
    if (problem := b.deps.definitions.unstorable(c.step, "the step")) is not None:
        b.policy.fail_task(lo, task, problem, retryable=False)
        return Outcome.OK
    lo.inst.record(
        b.stamp, ev.TaskStepRecorded(task_id=task.id, index=len(task.steps), step=c.step)
    )
    return Outcome.OK


async def _fail(b: Batch, lo: Loaded, c: cmd.FailTask) -> Outcome:
    task = _reported_task(b, lo, c)
    if task is None:
        return Outcome.STALE
    b.policy.fail_task(lo, task, c.error, retryable=c.retryable)
    return Outcome.OK


# ---- the sweeper's commands (a lease's expiry: leases.expire) ------------------------------
async def _claims(b: Batch, c: cmd.RecordClaims) -> int:
    adopted = 0
    for instance_id, task_id, token, _attempt, _expires in c.leases:
        lease = b.uow.leases.get(task_id)
        if not fenced(b, task_id, token) or lease is None:
            b.policy.release_claimed_slot()
            continue
        owner = await b.uow.load(instance_id)
        task = owner.inst.task(task_id)
        if not task.active or owner.inst.status is not InstanceStatus.RUNNING:
            b.policy.release_claimed_slot()
            continue
        b.policy.adopt_lease(owner, task, lease)  # the slot the claim reserved becomes the task's
        adopted += 1
        b.drive(owner)
    return adopted


async def _timer(b: Batch, lo: Loaded, c: cmd.FireTimer) -> Outcome:
    b.uow.delete_timer(c.timer_id)
    inst = lo.inst
    if c.kind == TimerKind.INSTANCE_TIMEOUT:
        if inst.status is InstanceStatus.RUNNING:
            b.policy.fail_instance(lo, "instance timed out (settings.timeout)", None)
        return Outcome.FIRED
    task = inst.tasks.get(c.task_id or "")
    if task is None or not task.active or inst.status is not InstanceStatus.RUNNING:
        return Outcome.STALE
    if c.kind == TimerKind.TASK_TIMEOUT:
        b.policy.abandon(lo, task)
        node = lo.node_of(task)
        b.policy.fail_task(lo, task, f"timed out after {node.timeout_s}s", retryable=False)
        return Outcome.FIRED
    kind = CONTROL_NODES.get(task.node_type)
    if kind is not None and c.kind in kind.timers and task.status is TaskStatus.WAITING:
        kind.on_timer(b, lo, task, c.kind)
    return Outcome.FIRED


async def _child(b: Batch, lo: Loaded, c: cmd.ChildFinished) -> Outcome:
    task = lo.inst.tasks.get(c.task_id)
    if (
        task is None
        or task.status is not TaskStatus.WAITING
        or task.detail.get("child_instance_id") != c.child_instance_id
    ):
        return Outcome.STALE
    if lo.inst.status is not InstanceStatus.RUNNING:
        return Outcome.STALE
    CONTROL_NODES[task.node_type].on_child(b, lo, task, c)
    return Outcome(c.status)


# ---- requests from outside ---------------------------------------------------------------
async def _signal(b: Batch, lo: Loaded, c: cmd.SignalTask) -> Outcome:
    task = lo.inst.task(c.task_id)
    kind = CONTROL_NODES.get(task.node_type)
    if kind is None or not kind.takes_signals or task.status is not TaskStatus.WAITING:
        raise Conflict(
            f"task {c.task_id} is not an approval waiting for a decision (it is {task.status})"
        )
    return Outcome(kind.on_signal(b, lo, task, c.payload))


async def _cancel(b: Batch, lo: Loaded, c: cmd.CancelInstance) -> Outcome:
    inst = lo.inst
    if inst.status not in (InstanceStatus.RUNNING, InstanceStatus.FAILED):
        return Outcome.ALREADY_FINISHED
    for task in inst.active_tasks():
        b.policy.cancel_task(lo, task, c.reason)
    inst.record(b.stamp, ev.InstanceCancelled(reason=c.reason))
    b.policy.notify_parent(lo, "cancelled", None, c.reason)
    return Outcome.CANCELLED


async def _retry(b: Batch, lo: Loaded, c: cmd.RetryInstance) -> Outcome:
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
        ended = sc.status in (ScopeStatus.FAILED, ScopeStatus.CANCELLED)
        if ended and inst.scopes[sc.parent].status is ScopeStatus.ACTIVE:
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
    return Outcome.RESUMED


async def _rerun(b: Batch, lo: Loaded, task: Task) -> None:
    node = lo.node_of(task)
    execution = NODE_TYPES[node.type].execution
    if node.body is not None:
        record_waiting(b, lo, task.id, task.scope, node)
        return
    lo.inst.record(
        b.stamp, ev.TaskReset(task_id=task.id, attempt=task.attempt + 1, available_at=b.now)
    )
    if execution is Execution.WORKER:
        b.policy.lease_existing(lo, task)
    elif execution is Execution.CONTROL:
        record_waiting(b, lo, task.id, task.scope, node)
        await restart_control(b, lo, task, node)


# ---- the table ---------------------------------------------------------------------------
_C = TypeVar("_C", bound=cmd.Command)
_Handler = Callable[[Batch, Loaded, _C], Awaitable[Outcome]]
_HANDLERS: dict[type, _Handler[cmd.Command]] = {}


def _handles(command: type[_C], handler: _Handler[_C]) -> None:
    """Register ``handler`` for ``command`` (mypy checks that it takes that command)."""
    _HANDLERS[command] = cast(_Handler[cmd.Command], handler)


_handles(cmd.CompleteTask, _complete)
_handles(cmd.FailTask, _fail)
_handles(cmd.RecordStep, _step)
_handles(cmd.ExpireLease, expire)
_handles(cmd.FireTimer, _timer)
_handles(cmd.SignalTask, _signal)
_handles(cmd.CancelInstance, _cancel)
_handles(cmd.RetryInstance, _retry)
_handles(cmd.ChildFinished, _child)
