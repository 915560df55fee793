"""One group commit: load the touched instances, apply commands, drive decisions, collect rows.

Nothing here commits or dispatches: the engine does both once the transaction has committed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from cadenza.application.context import idempotency_key, template_context
from cadenza.application.definitions import Definitions, VarsInvalid
from cadenza.application.ports import (
    Changes,
    IdGenerator,
    InstanceRow,
    LeaseInfo,
    StoredDefinition,
    TemplateError,
    Templates,
    Timer,
    Transaction,
)
from cadenza.application.work import Capacity, Work
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.definition import Node, OnError
from cadenza.domain.errors import Conflict, NotFound
from cadenza.domain.instance import Instance, Stamp, Task
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.nodetypes import NODE_TYPES
from cadenza.domain.plan import Plan
from cadenza.domain.status import InstanceStatus, TaskStatus


@dataclass
class Loaded:
    inst: Instance
    plan: Plan
    stored: StoredDefinition
    is_new: bool = False


@dataclass(frozen=True)
class BatchDeps:
    definitions: Definitions
    templates: Templates
    new_id: IdGenerator
    owner: str
    lease_s: float
    max_requeues: int
    capacity: Capacity
    inline_pure: bool = True  # pure nodes run in the decision step (EngineSettings.inline_pure)


@dataclass
class Outcome:
    """What to do after commit."""

    dispatch: list[Work] = field(default_factory=list)
    wakeups: list[float] = field(default_factory=list)
    cancel_local: list[str] = field(default_factory=list)
    events: list[tuple[int, ev.Event]] = field(default_factory=list)
    finished: list[Instance] = field(default_factory=list)


class Batch:
    def __init__(
        self, tx: Transaction, deps: BatchDeps, cache: dict[str, Loaded], now: float
    ) -> None:
        self.tx = tx
        self.deps = deps
        self.cache = cache
        self.stamp = Stamp(now, deps.new_id)
        self.now = now
        self.loaded: dict[str, Loaded] = {}
        self.leases: dict[str, LeaseInfo] = {}
        self.changes = Changes()
        self.outcome = Outcome()
        self.follow_ups: deque[cmd.Command] = deque()
        self._keys: dict[str, str] = {}
        self._leased: list[tuple[Loaded, Task]] = []
        self.slots_taken = 0
        self._dirty: dict[str, Loaded] = {}

    # ---- loading -------------------------------------------------------------------------
    async def prelock(self, commands: list[cmd.Command]) -> None:
        ids = sorted(
            {
                c.instance_id
                for c in commands
                if not isinstance(c, cmd.StartInstance | cmd.RecordClaims)
            }
            | {lease[0] for c in commands if isinstance(c, cmd.RecordClaims) for lease in c.leases}
        )
        await self._lock(ids)
        task_ids = [
            c.task_id
            for c in commands
            if isinstance(c, cmd.CompleteTask | cmd.FailTask | cmd.ExpireLease | cmd.RecordStep)
        ]
        task_ids += [
            lease[1] for c in commands if isinstance(c, cmd.RecordClaims) for lease in c.leases
        ]
        if task_ids:
            self.leases.update(await self.tx.lock_tasks(sorted(set(task_ids))))

    async def _lock(self, ids: list[str]) -> None:
        wanted = [i for i in ids if i not in self.loaded]
        if not wanted:
            return
        headers = await self.tx.lock_instances(wanted)
        for iid in wanted:
            header = headers.get(iid)
            if header is None:
                continue
            lo = self.cache.get(iid)
            if lo is not None and lo.inst.seq > header.seq:
                lo = None  # our copy holds uncommitted changes of a failed batch
            if lo is None:
                inst = Instance.replay(iid, await self.tx.events_after(iid, 0))
                stored = await self.tx.definition(header.process_id, header.version)
                if stored is None:
                    raise NotFound(f"definition {header.process_id} v{header.version} is missing")
                lo = Loaded(inst, self.deps.definitions.plan_for(stored), stored)
            elif lo.inst.seq < header.seq:
                lo.inst.catch_up(await self.tx.events_after(iid, lo.inst.seq))
            self.loaded[iid] = lo

    async def load(self, instance_id: str) -> Loaded:
        if instance_id not in self.loaded:
            await self._lock([instance_id])
        lo = self.loaded.get(instance_id)
        if lo is None:
            raise NotFound(f"instance {instance_id!r} not found")
        return lo

    # ---- commands ------------------------------------------------------------------------
    async def apply(self, command: cmd.Command) -> object:
        result = await self._apply_one(command)
        while self.follow_ups:
            await self._apply_one(self.follow_ups.popleft())
        return result

    async def _apply_one(self, c: cmd.Command) -> object:
        from cadenza.application import handlers

        if isinstance(c, cmd.StartInstance):
            return await self.start_instance(c)
        lo = await self.load(c.instance_id) if not isinstance(c, cmd.RecordClaims) else None
        result = await handlers.handle(self, lo, c)
        if lo is not None:
            await self.drive(lo)
        return result

    async def start_instance(self, c: cmd.StartInstance) -> str:
        if c.idempotency_key:
            existing = self._keys.get(
                c.idempotency_key
            ) or await self.tx.instance_by_idempotency_key(c.idempotency_key)
            if existing is not None:
                return existing
        stored = await self.tx.definition(c.process_id, c.version)
        if stored is None or stored.workspace_id != c.workspace_id:
            # another tenant's process does not exist for this one
            which = "latest published version" if c.version is None else f"version {c.version}"
            raise NotFound(f"process {c.process_id!r} has no {which}")
        limit = self.deps.definitions.limits.max_subprocess_depth
        if c.depth > limit:
            # a process that starts itself would otherwise start children in this same batch
            # until memory runs out, never committing (the cycle check at publish time cannot
            # see drafts or every version pin)
            raise Conflict(
                f"subprocess depth limit: {c.process_id!r} would run {c.depth} levels deep; "
                f"the limit is {limit} (setting max_subprocess_depth)"
            )
        plan = self.deps.definitions.plan_for(stored)
        if not (c.inputs_checked and c.version == stored.version):
            self.deps.definitions.check_inputs(plan.definition, c.inputs)
        iid = self.deps.new_id()
        inst = Instance(iid)
        try:
            variables = await self.deps.templates.render(plan.definition.vars, {"inputs": c.inputs})
        except TemplateError as exc:
            raise VarsInvalid(c.process_id, str(exc)) from exc
        if (problem := self.deps.definitions.value_problem(variables, "vars")) is not None:
            raise VarsInvalid(c.process_id, f"vars{problem[0]}: {problem[1]}")
        inst.record(
            self.stamp,
            ev.InstanceStarted(
                process_id=stored.process_id,
                version=stored.version,
                definition_hash=stored.content_hash,
                inputs=dict(c.inputs),
                vars=variables if isinstance(variables, dict) else {},
                parent_instance_id=c.parent_instance_id,
                parent_task_id=c.parent_task_id,
                idempotency_key=c.idempotency_key,
                workspace_id=c.workspace_id,
                depth=c.depth,
            ),
        )
        lo = Loaded(inst, plan, stored, is_new=True)
        self.loaded[iid] = lo
        if c.idempotency_key:
            self._keys[c.idempotency_key] = iid
            self.changes.idempotency_keys.append((c.idempotency_key, iid))
        timeout = plan.definition.settings.timeout_s
        if timeout:
            self.add_timer(iid, None, "instance_timeout", self.now + timeout)
        await self.drive(lo)
        return iid

    async def drive(self, lo: Loaded) -> None:
        """Mark an instance for deciding; ``settle`` decides once per batch, not per command,
        so a thousand timers firing together cost one scheduling pass, not a thousand."""
        self._dirty[lo.inst.id] = lo

    async def settle(self) -> None:
        """Decide every touched instance, then apply what that caused, until quiet."""
        from cadenza.application import decide

        while self._dirty or self.follow_ups:
            while self.follow_ups:
                await self._apply_one(self.follow_ups.popleft())
            dirty = list(self._dirty.values())
            self._dirty.clear()
            for lo in dirty:
                await decide.drive(self, lo)

    # ---- helpers shared by handlers and decisions ----------------------------------------
    def node_of(self, lo: Loaded, task: Task) -> Node:
        return lo.plan.graph_for(lo.inst.scopes[task.scope].path).nodes[task.node_id]

    def record_waiting(
        self, lo: Loaded, task_id: str, scope: str, node: Node, detail: JSONObject | None = None
    ) -> None:
        """A control node's task waits (on a timer, a signal, a child or its body)."""
        lo.inst.record(
            self.stamp,
            ev.TaskWaiting(
                task_id=task_id,
                scope=scope,
                node_id=node.id,
                node_type=node.type,
                detail=detail or {},
            ),
        )

    def add_timer(self, instance_id: str, task_id: str | None, kind: str, fire_at: float) -> None:
        self.changes.new_timers.append(
            Timer(self.deps.new_id(), instance_id, task_id, kind, fire_at)
        )
        self.outcome.wakeups.append(fire_at)

    def schedule_worker(
        self, lo: Loaded, task_id: str, scope: str, node: Node, attempt: int
    ) -> None:
        leased = self.deps.capacity.take()
        if leased:
            self.slots_taken += 1
        lo.inst.record(
            self.stamp,
            ev.TaskScheduled(
                task_id=task_id,
                scope=scope,
                node_id=node.id,
                node_type=node.type,
                attempt=attempt,
                available_at=self.now,
                leased_to=self.deps.owner if leased else None,
                lease_token=self.deps.new_id() if leased else None,
                lease_expires_at=self.now + self.deps.lease_s if leased else None,
            ),
        )
        if leased:
            self._leased.append((lo, lo.inst.tasks[task_id]))

    def lease_existing(self, lo: Loaded, task: Task) -> None:
        """Lease a queued task to the local worker if a slot is free (else it stays queued)."""
        if not self.deps.capacity.take():
            self.outcome.wakeups.append(self.now)
            return
        self.slots_taken += 1
        lo.inst.record(
            self.stamp,
            ev.TaskLeased(
                task_id=task.id,
                leased_to=self.deps.owner,
                lease_token=self.deps.new_id(),
                lease_expires_at=self.now + self.deps.lease_s,
            ),
        )
        self._leased.append((lo, task))

    def adopt_lease(self, lo: Loaded, task: Task, lease: LeaseInfo) -> None:
        """Journal a lease taken in the store by this worker and dispatch it."""
        assert lease.lease_token is not None
        assert lease.lease_expires_at is not None
        lo.inst.record(
            self.stamp,
            ev.TaskLeased(
                task_id=task.id,
                leased_to=self.deps.owner,
                lease_token=lease.lease_token,
                lease_expires_at=lease.lease_expires_at,
            ),
        )
        self._leased.append((lo, task))

    def release_claimed_slot(self) -> None:
        """Free the slot a claim reserved for a task not adopted; a rollback reserves it again
        (the claim is retried), and the sweeper frees it if the claim is never recorded."""
        self.deps.capacity.give_back()
        self.slots_taken -= 1

    def fail_task(self, lo: Loaded, task: Task, error: str, *, retryable: bool) -> None:
        node = self.node_of(lo, task)
        if retryable and NODE_TYPES[node.type].retryable and task.attempt < node.retry.max_attempts:
            at = self.now + node.retry.delay_after(task.attempt)
            lo.inst.record(
                self.stamp,
                ev.TaskRetryScheduled(
                    task_id=task.id, attempt=task.attempt + 1, error=error, available_at=at
                ),
            )
            self.outcome.wakeups.append(at)
            return
        if node.on_error is OnError.CONTINUE:
            lo.inst.record(
                self.stamp,
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
                self.stamp,
                ev.TaskFailed(task_id=task.id, attempt=task.attempt, error=error, handled=handled),
            )

    def cancel_task(self, lo: Loaded, task: Task, reason: str) -> None:
        child = task.detail.get("child_instance_id")
        if isinstance(child, str):
            self.follow_ups.append(cmd.CancelInstance(child, f"parent cancelled: {reason}"))
        if task.status is TaskStatus.RUNNING and task.leased_to == self.deps.owner:
            self.outcome.cancel_local.append(task.id)
        lo.inst.record(self.stamp, ev.TaskCancelled(task_id=task.id, reason=reason))

    def notify_parent(self, lo: Loaded, status: str, outputs: JSON, error: str | None) -> None:
        inst = lo.inst
        if inst.parent_instance_id and inst.parent_task_id:
            self.follow_ups.append(
                cmd.ChildFinished(
                    inst.parent_instance_id, inst.parent_task_id, inst.id, status, outputs, error
                )
            )

    # ---- finishing -----------------------------------------------------------------------
    def finish(self) -> Changes:
        contexts: dict[tuple[str, str], dict[str, object]] = {}
        for lo, task in self._leased:
            if task.status is not TaskStatus.RUNNING or task.leased_to != self.deps.owner:
                self.deps.capacity.give_back()
                self.slots_taken -= 1
                continue
            key = (lo.inst.id, task.scope)
            if key not in contexts:
                contexts[key] = template_context(lo.inst, task.scope)
            assert task.lease_token is not None
            self.outcome.dispatch.append(
                Work(
                    instance_id=lo.inst.id,
                    task_id=task.id,
                    scope=task.scope,
                    node=self.node_of(lo, task),
                    attempt=task.attempt,
                    lease_token=task.lease_token,
                    context=contexts[key],
                    steps=tuple(task.steps),
                    idempotency_key=idempotency_key(
                        lo.inst.id, task.scope, task.node_id, task.attempt
                    ),
                    workspace_id=lo.inst.workspace_id,
                )
            )
        for lo in self.loaded.values():
            self._collect(lo)
        return self.changes

    def _collect(self, lo: Loaded) -> None:
        inst = lo.inst
        pending = inst.take_pending()
        if not pending and not lo.is_new:
            return
        self.changes.events.extend(pending)
        self.outcome.events.extend(pending)
        row = InstanceRow(
            id=inst.id,
            process_id=inst.process_id,
            version=inst.version,
            status=inst.status.value,
            inputs=inst.inputs,
            outputs=inst.outputs,
            error=inst.error,
            parent_instance_id=inst.parent_instance_id,
            created_at=inst.created_at,
            updated_at=inst.updated_at,
            seq=inst.seq,
            workspace_id=inst.workspace_id,
        )
        (self.changes.new_instances if lo.is_new else self.changes.updated_instances).append(row)
        for tid in inst.new_tasks:
            self.changes.new_tasks.append((inst.id, inst.tasks[tid]))
        for tid in inst.dirty_tasks - inst.new_tasks:
            self.changes.updated_tasks.append((inst.id, inst.tasks[tid]))
        inst.new_tasks.clear()
        inst.dirty_tasks.clear()
        if inst.status is not InstanceStatus.RUNNING:
            self.outcome.finished.append(inst)

    def rolled_back(self) -> None:
        """The transaction failed: forget every instance it touched and free its slots."""
        for iid in self.loaded:
            self.cache.pop(iid, None)
        if self.slots_taken >= 0:
            self.deps.capacity.give_back(self.slots_taken)
        else:  # slots reserved by claims and freed here are reserved again
            self.deps.capacity.used -= self.slots_taken
        self.slots_taken = 0

    def committed(self) -> None:
        """The transaction committed: loaded instances become the cache."""
        for _, task in self.changes.new_tasks + self.changes.updated_tasks:
            task.lease_changed = False
        for iid, lo in self.loaded.items():
            lo.is_new = False
            if lo.inst.status in (InstanceStatus.COMPLETED, InstanceStatus.CANCELLED):
                self.cache.pop(iid, None)
            else:
                self.cache[iid] = lo
