"""The engine's rules about tasks and instances, applied inside one unit of work: leases and
the worker's capacity, retry and ``on_error``, cancel cascades, instance failure and telling
a parent instance that its child finished."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cadenza.application.context import idempotency_key, template_context
from cadenza.application.engine.unit_of_work import Loaded, UnitOfWork
from cadenza.application.ports import IdGenerator, LeaseInfo
from cadenza.application.work import Capacity, Work
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.definition import Node, OnError
from cadenza.domain.json import JSON
from cadenza.domain.nodetypes import NODE_TYPES
from cadenza.domain.status import ScopeStatus, TaskStatus
from cadenza.domain.tasks import Task


@dataclass(frozen=True)
class LeaseTerms:
    owner: str  # who holds the leases this worker takes (EngineSettings.holder)
    lease_s: float
    max_requeues: int
    max_crashes: int = 0  # deaths of the holder's process an attempt may survive; 0: any


class Policy:
    def __init__(
        self, uow: UnitOfWork, terms: LeaseTerms, capacity: Capacity, new_id: IdGenerator
    ) -> None:
        self.uow = uow
        self.terms = terms
        self.capacity = capacity
        self.follow_ups: deque[cmd.Command] = deque()  # commands this batch caused
        self.slots_taken = 0  # capacity taken (or, if negative, freed) by this batch
        self._new_id = new_id
        self._leased: list[tuple[Loaded, Task]] = []

    # ---- leases and capacity -------------------------------------------------------------
    def schedule_worker(
        self, lo: Loaded, task_id: str, scope: str, node: Node, attempt: int
    ) -> None:
        """Queue a worker node's task, leased to the local worker at once if a slot is free."""
        leased = self.capacity.take()
        if leased:
            self.slots_taken += 1
        now = self.uow.now
        lo.inst.record(
            self.uow.stamp,
            ev.TaskScheduled(
                task_id=task_id,
                scope=scope,
                node_id=node.id,
                node_type=node.type,
                attempt=attempt,
                available_at=now,
                leased_to=self.terms.owner if leased else None,
                lease_token=self._new_id() if leased else None,
                lease_expires_at=now + self.terms.lease_s if leased else None,
            ),
        )
        if leased:
            self._leased.append((lo, lo.inst.tasks[task_id]))

    def lease_existing(self, lo: Loaded, task: Task) -> None:
        """Lease a queued task to the local worker if a slot is free (else it stays queued)."""
        if not self.capacity.take():
            self.uow.outcome.wakeups.append(self.uow.now)
            return
        self.slots_taken += 1
        lo.inst.record(
            self.uow.stamp,
            ev.TaskLeased(
                task_id=task.id,
                leased_to=self.terms.owner,
                lease_token=self._new_id(),
                lease_expires_at=self.uow.now + self.terms.lease_s,
            ),
        )
        self._leased.append((lo, task))

    def adopt_lease(self, lo: Loaded, task: Task, lease: LeaseInfo) -> None:
        """Journal a lease taken in the store by this worker and dispatch it."""
        assert lease.lease_token is not None
        assert lease.lease_expires_at is not None
        lo.inst.record(
            self.uow.stamp,
            ev.TaskLeased(
                task_id=task.id,
                leased_to=self.terms.owner,
                lease_token=lease.lease_token,
                lease_expires_at=lease.lease_expires_at,
            ),
        )
        self._leased.append((lo, task))

    def release_claimed_slot(self) -> None:
        """Free the slot a claim reserved for a task not adopted; a rollback reserves it again
        (the claim is retried), and the sweeper frees it if the claim is never recorded."""
        self.capacity.give_back()
        self.slots_taken -= 1

    def requeue(
        self, lo: Loaded, task: Task, reason: str, *, charged: bool, crashed: bool = False
    ) -> None:
        """Put a running task whose lease lapsed (or was released) back in the queue."""
        lo.inst.record(
            self.uow.stamp,
            ev.TaskRequeued(task_id=task.id, reason=reason, charged=charged, crashed=crashed),
        )
        self.lease_existing(lo, task)

    def dispatch(self) -> list[Work]:
        """The work leased to the local worker by this batch and still running at its end;
        the slots of the rest are given back."""
        contexts: dict[tuple[str, str], dict[str, object]] = {}
        out: list[Work] = []
        for lo, task in self._leased:
            if task.status is not TaskStatus.RUNNING or task.leased_to != self.terms.owner:
                self.capacity.give_back()
                self.slots_taken -= 1
                continue
            key = (lo.inst.id, task.scope)
            if key not in contexts:
                contexts[key] = template_context(lo.inst, task.scope)
            assert task.lease_token is not None
            out.append(
                Work(
                    instance_id=lo.inst.id,
                    task_id=task.id,
                    scope=task.scope,
                    node=lo.node_of(task),
                    attempt=task.attempt,
                    lease_token=task.lease_token,
                    context=contexts[key],
                    steps=tuple(task.steps),
                    idempotency_key=idempotency_key(
                        lo.inst.id, task.scope, task.node_id, task.attempt
                    ),
                    workspace_id=lo.inst.workspace_id,
                    trace_context=lo.trace_context,
                )
            )
        return out

    def rolled_back(self) -> None:
        """The transaction failed: free the slots it took (reserve again those it freed)."""
        if self.slots_taken >= 0:
            self.capacity.give_back(self.slots_taken)
        else:  # slots reserved by claims and freed here are reserved again
            self.capacity.reserve(-self.slots_taken)
        self.slots_taken = 0

    # ---- failure: retry, on_error, cancel cascades ---------------------------------------
    def fail_task(self, lo: Loaded, task: Task, error: str, *, retryable: bool) -> None:
        """Retry the task if its node allows another attempt, else apply its ``on_error``."""
        node = lo.node_of(task)
        stamp = self.uow.stamp
        if retryable and NODE_TYPES[node.type].retryable and task.attempt < node.retry.max_attempts:
            at = self.uow.now + node.retry.delay_after(task.attempt)
            lo.inst.record(
                stamp,
                ev.TaskRetryScheduled(
                    task_id=task.id, attempt=task.attempt + 1, error=error, available_at=at
                ),
            )
            self.uow.outcome.wakeups.append(at)
            return
        if node.on_error is OnError.CONTINUE:
            lo.inst.record(
                stamp,
                ev.TaskCompleted(
                    task_id=task.id,
                    attempt=task.attempt,
                    output=node.default,
                    ports=("out",),
                    error=error,
                ),
            )
        else:
            handled = node.on_error is OnError.BRANCH
            lo.inst.record(
                stamp,
                ev.TaskFailed(task_id=task.id, attempt=task.attempt, error=error, handled=handled),
            )

    def cancel_task(self, lo: Loaded, task: Task, reason: str) -> None:
        """Cancel a task, the child instance it started and, if it runs here, its run."""
        child = task.detail.get("child_instance_id")
        if isinstance(child, str):
            self.follow_ups.append(cmd.CancelInstance(child, f"parent cancelled: {reason}"))
        if task.status is TaskStatus.RUNNING and task.leased_to == self.terms.owner:
            self.uow.outcome.cancel_local.append(task.id)
        lo.inst.record(self.uow.stamp, ev.TaskCancelled(task_id=task.id, reason=reason))

    def cancel_scope(self, lo: Loaded, scope_key: str, reason: str) -> None:
        """Cancel the active tasks of a scope and of the scopes nested in it, and close those
        nested scopes (the scope itself is closed by the caller, with its own status)."""
        inst = lo.inst
        nested = {k for k in inst.scopes if k == scope_key or k.startswith(scope_key + "/")}
        for task in inst.active_tasks():
            if task.scope in nested:
                self.cancel_task(lo, task, reason)
        for key in nested - {scope_key}:
            if inst.scopes[key].status is ScopeStatus.ACTIVE:
                inst.record(self.uow.stamp, ev.ScopeClosed(scope=key, status=ScopeStatus.CANCELLED))

    def abandon(self, lo: Loaded, task: Task) -> None:
        """Cancel what a control task started (child instance, body scopes) before it fails."""
        child = task.detail.get("child_instance_id")
        if isinstance(child, str):
            self.follow_ups.append(cmd.CancelInstance(child, "parent task timed out"))
        prefix = f"{task.scope}/{task.node_id}["
        for t in lo.inst.active_tasks():
            if t.scope.startswith(prefix):
                self.cancel_task(lo, t, "owner timed out")
        for sc in list(lo.inst.scopes.values()):
            if sc.key.startswith(prefix) and sc.status is ScopeStatus.ACTIVE:
                lo.inst.record(
                    self.uow.stamp, ev.ScopeClosed(scope=sc.key, status=ScopeStatus.CANCELLED)
                )

    # ---- instances -----------------------------------------------------------------------
    def fail_instance(self, lo: Loaded, error: str, node_id: str | None) -> None:
        inst = lo.inst
        for task in inst.active_tasks():
            self.cancel_task(lo, task, "instance failed")
        inst.record(self.uow.stamp, ev.InstanceFailed(error=error, node_id=node_id))
        self.notify_parent(lo, "failed", None, error)

    def notify_parent(self, lo: Loaded, status: str, outputs: JSON, error: str | None) -> None:
        inst = lo.inst
        if inst.parent_instance_id and inst.parent_task_id:
            self.follow_ups.append(
                cmd.ChildFinished(
                    inst.parent_instance_id, inst.parent_task_id, inst.id, status, outputs, error
                )
            )
