"""The unit of work of one group commit: lock and load the instances it touches (an identity
map over a cache of committed instances), then collect what changed into rows to save.

Nothing here decides anything, commits or dispatches: the loop commits what ``collect``
returns and acts on the ``Outcome`` once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from cadenza.application.definitions import Definitions
from cadenza.application.ports import (
    Changes,
    IdGenerator,
    InstanceRow,
    LeaseInfo,
    OutboxRow,
    StoredDefinition,
    Timer,
    Transaction,
)
from cadenza.application.work import Work
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.definition import Node
from cadenza.domain.errors import NotFound
from cadenza.domain.instance import Instance, Stamp
from cadenza.domain.json import JSONObject
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.plan import Plan
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.domain.tasks import Task
from cadenza.domain.timers import TimerKind, task_timer_kinds, timer_id


@dataclass
class Loaded:
    """An instance with the plan of its pinned definition."""

    inst: Instance
    plan: Plan
    stored: StoredDefinition
    is_new: bool = False
    trace_context: str | None = None  # stored on the instance row (see ports_obs.Tracer)

    def node_of(self, task: Task) -> Node:
        return self.plan.graph_for(self.inst.scopes[task.scope].path).nodes[task.node_id]


@dataclass
class Outcome:
    """What to do after commit."""

    dispatch: list[Work] = field(default_factory=list)
    wakeups: list[float] = field(default_factory=list)
    cancel_local: list[str] = field(default_factory=list)
    events: list[tuple[int, ev.Event]] = field(default_factory=list)
    finished: list[Instance] = field(default_factory=list)


_LEASED_COMMANDS = cmd.CompleteTask | cmd.FailTask | cmd.ExpireLease | cmd.RecordStep


class UnitOfWork:
    def __init__(
        self,
        tx: Transaction,
        definitions: Definitions,
        cache: dict[str, Loaded],
        now: float,
        new_id: IdGenerator,
        outbox_by: str | None = None,
    ) -> None:
        self.tx = tx
        self.cache = cache
        self.now = now
        self.stamp = Stamp(now, new_id)
        self.loaded: dict[str, Loaded] = {}
        self.leases: dict[str, LeaseInfo] = {}  # the locked task rows of leased commands
        self.changes = Changes()
        self.outcome = Outcome()
        self.keys: dict[str, str] = {}  # idempotency keys of instances started in this batch
        self._definitions = definitions
        self._new_id = new_id
        # the committing engine's holder when the bus crosses processes: events go to the
        # outbox too (None: the in-process bus, nothing is written)
        self._outbox_by = outbox_by
        self._timer_due: dict[str, float] = {}
        self._deleted_timers: set[str] = set()

    # ---- locking and loading -------------------------------------------------------------
    async def prelock(self, commands: Sequence[cmd.Command]) -> None:
        """Lock every instance and leased task the commands name, in id order."""
        ids = sorted(
            {
                c.instance_id
                for c in commands
                if not isinstance(c, cmd.StartInstance | cmd.RecordClaims)
            }
            | {lease[0] for c in commands if isinstance(c, cmd.RecordClaims) for lease in c.leases}
        )
        await self._lock(ids)
        task_ids = [c.task_id for c in commands if isinstance(c, _LEASED_COMMANDS)]
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
                stored = await self._definitions.cache.version(
                    inst.workspace_id,
                    header.process_id,
                    header.version,
                    partial(self.tx.definition, header.process_id, header.version),
                )
                if stored is None:
                    raise NotFound(f"definition {header.process_id} v{header.version} is missing")
                plan = self._definitions.plan_for(stored)
                lo = Loaded(inst, plan, stored, trace_context=header.trace_context)
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

    def add(self, lo: Loaded, idempotency_key: str | None) -> None:
        """Take a new instance (``lo.is_new``) into the unit of work."""
        self.loaded[lo.inst.id] = lo
        if idempotency_key:
            self.keys[idempotency_key] = lo.inst.id
            self.changes.idempotency_keys.append((idempotency_key, lo.inst.id))

    # ---- timers --------------------------------------------------------------------------
    def add_timer(
        self, instance_id: str, task_id: str | None, kind: TimerKind, fire_at: float
    ) -> None:
        """Arm a timer; its id names its owner (the task's current attempt, or the instance),
        so the batch that ends the owner deletes it (``_end_timers``)."""
        attempt = 1
        lo = self.loaded.get(instance_id)
        if task_id is not None and lo is not None:
            task = lo.inst.tasks.get(task_id)
            attempt = task.attempt if task is not None else 1  # a task being started: 1
        owner = instance_id if task_id is None else task_id
        timer = Timer(timer_id(owner, kind, attempt), instance_id, task_id, kind.value, fire_at)
        self.changes.new_timers.append(timer)
        self.outcome.wakeups.append(fire_at)

    def delete_timer(self, id_: str) -> None:
        if id_ not in self._deleted_timers:  # a fired timer whose owner it also ended
            self._deleted_timers.add(id_)
            self.changes.deleted_timers.append(id_)

    # ---- saving --------------------------------------------------------------------------
    def collect(self) -> Changes:
        """The rows and events to save: every loaded instance's changes since it was loaded."""
        if self._outbox_by is not None:
            for t in self.changes.new_timers:
                due = self._timer_due.get(t.instance_id)
                self._timer_due[t.instance_id] = t.fire_at if due is None else min(due, t.fire_at)
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
        if lo.plan.arms_timers:
            self._end_timers(lo, pending)
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
            trace_context=lo.trace_context,
        )
        (self.changes.new_instances if lo.is_new else self.changes.updated_instances).append(row)
        for tid in inst.new_tasks:
            self.changes.new_tasks.append((inst.id, inst.tasks[tid]))
        for tid in inst.dirty_tasks - inst.new_tasks:
            self.changes.updated_tasks.append((inst.id, inst.tasks[tid]))
        if self._outbox_by is not None and pending:
            self._add_outbox(inst, pending)
        inst.new_tasks.clear()
        inst.dirty_tasks.clear()
        if inst.status is not InstanceStatus.RUNNING:
            self.outcome.finished.append(inst)

    def _end_timers(self, lo: Loaded, pending: list[tuple[int, ev.Event]]) -> None:
        """Delete, in this batch, the pending timers of the tasks these events ended (their
        attempt's) and the instance timeout of an instance that completed or was cancelled (a
        failed one keeps it: a retry from failure keeps the deadline). The ids are derived,
        so nothing is read; tasks of nodes that arm no timer cost a lookup."""
        inst = lo.inst
        attempt: dict[str, int] = {}  # a task's attempt at this point of the reverse walk
        ended: list[tuple[str, int]] = []
        for _, e in reversed(pending):
            if isinstance(e, ev.TaskCompleted | ev.TaskFailed):
                ended.append((e.task_id, e.attempt))
            elif isinstance(e, ev.TaskRetryScheduled | ev.TaskReset):
                attempt[e.task_id] = e.attempt - 1
                if isinstance(e, ev.TaskRetryScheduled):
                    ended.append((e.task_id, e.attempt - 1))
            elif isinstance(e, ev.TaskCancelled):
                task = inst.tasks.get(e.task_id)
                now = task.attempt if task is not None else 1
                ended.append((e.task_id, attempt.get(e.task_id, now)))
            elif (
                isinstance(e, ev.InstanceCompleted | ev.InstanceCancelled)
                and lo.plan.definition.settings.timeout_s
            ):
                self.delete_timer(timer_id(inst.id, TimerKind.INSTANCE_TIMEOUT))
        for task_id, at in ended:
            task = inst.tasks.get(task_id)
            kind_of = NODE_TYPES.get(task.node_type) if task is not None else None
            if task is None or kind_of is None or kind_of.execution is not Execution.CONTROL:
                continue  # only control nodes arm timers for their tasks
            node = lo.node_of(task)
            for kind in task_timer_kinds(node.type, node.timeout_s, control=True):
                self.delete_timer(timer_id(task_id, kind, at))

    def _add_outbox(self, inst: Instance, pending: list[tuple[int, ev.Event]]) -> None:
        """One outbox row per event; the instance's last row of this commit also says when a
        worker elsewhere has something to do (``wake_at``): the earliest task this commit left
        queued (not leased here) or timer it set."""
        due = [
            inst.tasks[t].available_at
            for t in inst.dirty_tasks | inst.new_tasks
            if inst.tasks[t].status is TaskStatus.SCHEDULED
        ]
        timer = self._timer_due.get(inst.id)
        if timer is not None:
            due.append(timer)
        base: JSONObject = {"workspace_id": inst.workspace_id}
        rows = self.changes.outbox
        for seq, e in pending:
            rows.append(OutboxRow(inst.id, seq, e.type_name, base, self.now))
        if due:
            last = rows[-1]
            data: JSONObject = {**base, "wake_at": min(due), "by": self._outbox_by or ""}
            rows[-1] = OutboxRow(last.instance_id, last.seq, last.type, data, last.created_at)

    def task_types(self, events: Sequence[tuple[int, ev.Event]]) -> dict[str, str]:
        """The node type of each task these events finished or retried, from the instances
        this batch loaded: the process that commits a task's end may be neither the one that
        scheduled it nor the one that ran it (a map closed by its last child, a timer fired
        by another worker's sweeper), and the events do not repeat the node type."""
        types: dict[str, str] = {}
        for _, e in events:
            if isinstance(e, ev.TaskCompleted | ev.TaskFailed | ev.TaskRetryScheduled):
                lo = self.loaded.get(e.instance_id)
                task = lo.inst.tasks.get(e.task_id) if lo is not None else None
                if task is not None:
                    types[e.task_id] = task.node_type
        return types

    def rolled_back(self) -> None:
        """The transaction failed: forget every instance it touched."""
        for iid in self.loaded:
            self.cache.pop(iid, None)

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
