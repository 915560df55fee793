"""One transaction of the in-memory store: writes staged beside the committed tables.

A transaction sees its own writes (reads look at its staged rows first) and nobody else does
until it commits; ``commit`` merges the staged rows in one synchronous step, so a reader
outside the transaction sees all of them or none. A transaction that is not committed
(an exception left the ``async with`` block) is simply dropped. The store runs one
transaction at a time (see ``MemoryStore.transaction``), like SQLite's ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cadenza.application.ports import (
    Changes,
    InstanceHeader,
    LeaseInfo,
    OutboxRow,
    StoreConflict,
    StoredDefinition,
    Timer,
)
from cadenza.domain.events import Event
from cadenza.infrastructure.memory_rows import (
    LIVE,
    DefinitionRecord,
    EventRecord,
    InstanceRecord,
    Tables,
    TaskRecord,
    decode_object,
    encode,
    find_definition,
)


@dataclass
class _Staged:
    """Rows written and not committed yet; a timer mapped to None was deleted."""

    definitions: dict[tuple[str, int], DefinitionRecord] = field(default_factory=dict)
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    events: dict[str, dict[int, EventRecord]] = field(default_factory=dict)
    timers: dict[str, Timer | None] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)

    def merge(self, other: _Staged) -> None:
        self.definitions.update(other.definitions)
        self.instances.update(other.instances)
        self.keys.update(other.keys)
        self.tasks.update(other.tasks)
        for iid, by_seq in other.events.items():
            self.events.setdefault(iid, {}).update(by_seq)
        self.timers.update(other.timers)
        self.outbox.extend(other.outbox)


def _conflict(what: str) -> StoreConflict:
    return StoreConflict(f"duplicate {what}")


class MemoryTransaction:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._staged = _Staged()
        self._orders = tables.orders
        self._definitions: dict[tuple[str, int | None], StoredDefinition | None] = {}

    # ---- reads (staged rows first) -------------------------------------------------------
    def instance(self, instance_id: str) -> InstanceRecord | None:
        found = self._staged.instances.get(instance_id)
        return found if found is not None else self._tables.instances.get(instance_id)

    def task(self, task_id: str) -> TaskRecord | None:
        found = self._staged.tasks.get(task_id)
        return found if found is not None else self._tables.tasks.get(task_id)

    def _key(self, key: str) -> str | None:
        return self._staged.keys.get(key) or self._tables.keys.get(key)

    def _event(self, instance_id: str, seq: int) -> EventRecord | None:
        staged = self._staged.events.get(instance_id, {}).get(seq)
        return staged if staged is not None else self._tables.events.get(instance_id, {}).get(seq)

    def _timer(self, timer_id: str) -> Timer | None:
        if timer_id in self._staged.timers:
            return self._staged.timers[timer_id]
        return self._tables.timers.get(timer_id)

    def live_tasks(self) -> list[TaskRecord]:
        """Scheduled and running tasks (committed, with this transaction's writes)."""
        out: dict[str, TaskRecord] = {}
        for tid in self._tables.live:
            out[tid] = self._tables.tasks[tid]
        out.update(self._staged.tasks)
        return [t for t in out.values() if t.status in LIVE]

    def definition_record(self, process_id: str, version: int | None) -> DefinitionRecord | None:
        return find_definition(
            {**self._tables.definitions, **self._staged.definitions}, process_id, version
        )

    def definitions_of(self, process_id: str) -> list[DefinitionRecord]:
        rows = {**self._tables.definitions, **self._staged.definitions}
        return [r for (p, _), r in rows.items() if p == process_id]

    # ---- the Transaction port ------------------------------------------------------------
    async def lock_instances(self, ids: Sequence[str]) -> dict[str, InstanceHeader]:
        out: dict[str, InstanceHeader] = {}
        for iid in sorted(ids):
            r = self.instance(iid)
            if r is not None:
                out[iid] = InstanceHeader(r.id, r.process_id, r.version, r.seq, r.trace_context)
        return out

    async def events_after(self, instance_id: str, seq: int) -> list[Event]:
        rows = {
            **self._tables.events.get(instance_id, {}),
            **self._staged.events.get(instance_id, {}),
        }
        return [rows[s].value() for s in sorted(rows) if s > seq]

    async def lock_tasks(self, task_ids: Sequence[str]) -> dict[str, LeaseInfo]:
        out: dict[str, LeaseInfo] = {}
        for tid in sorted(task_ids):
            r = self.task(tid)
            if r is not None:
                out[tid] = r.lease()
        return out

    async def definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        key = (process_id, version)
        if key not in self._definitions:
            found = self.definition_record(process_id, version)
            self._definitions[key] = None if found is None else found.value()
        return self._definitions[key]

    async def instance_by_idempotency_key(self, key: str) -> str | None:
        return self._key(key)

    async def timers_for(self, instance_id: str) -> list[Timer]:
        rows: dict[str, Timer | None] = {**self._tables.timers, **self._staged.timers}
        return [t for t in rows.values() if t is not None and t.instance_id == instance_id]

    async def save(self, changes: Changes) -> None:
        """Stage one batch; a duplicate key raises ``StoreConflict`` and stages nothing of it
        (the SQL store's IntegrityError, which rolls its transaction back)."""
        staged = _Staged()
        self._stage_instances(changes, staged)
        self._stage_tasks(changes, staged)
        for seq, e in changes.events:
            if e.instance_id in staged.events and seq in staged.events[e.instance_id]:
                raise _conflict(f"journal seq {seq} of {e.instance_id}")
            if self._event(e.instance_id, seq) is not None:
                raise _conflict(f"journal seq {seq} of {e.instance_id}")
            staged.events.setdefault(e.instance_id, {})[seq] = EventRecord.of(e)
        for t in changes.new_timers:
            if staged.timers.get(t.id) is not None or self._timer(t.id) is not None:
                raise _conflict(f"timer {t.id}")
            staged.timers[t.id] = t
        for timer_id in changes.deleted_timers:
            staged.timers[timer_id] = None
        staged.outbox = [replace(r, data=decode_object(encode(r.data))) for r in changes.outbox]
        self._staged.merge(staged)

    def _stage_instances(self, changes: Changes, staged: _Staged) -> None:
        keys = {iid: key for key, iid in changes.idempotency_keys}
        for r in changes.new_instances:
            if r.id in staged.instances or self.instance(r.id) is not None:
                raise _conflict(f"instance {r.id}")
            key = keys.get(r.id)
            if key is not None:
                if key in staged.keys or self._key(key) is not None:
                    raise _conflict("idempotency key")
                staged.keys[key] = r.id
            staged.instances[r.id] = InstanceRecord.of(r, key)
        for r in changes.updated_instances:
            current = staged.instances.get(r.id) or self.instance(r.id)
            if current is not None:  # an UPDATE of a missing row changes nothing
                staged.instances[r.id] = current.updated(r)

    def _stage_tasks(self, changes: Changes, staged: _Staged) -> None:
        orders = self._orders
        for iid, t in changes.new_tasks:
            if t.id in staged.tasks or self.task(t.id) is not None:
                raise _conflict(f"task {t.id}")
            orders += 1
            staged.tasks[t.id] = TaskRecord.of(iid, t, orders)
        for _, t in changes.updated_tasks:
            current = staged.tasks.get(t.id) or self.task(t.id)
            if current is not None:
                staged.tasks[t.id] = current.updated(t)
        self._orders = orders

    def put_tasks(self, records: Sequence[TaskRecord]) -> None:
        """Stage whole task rows (claims and lease changes)."""
        for r in records:
            self._staged.tasks[r.id] = r

    def put_definition(self, record: DefinitionRecord) -> None:
        key = (record.process_id, record.version)
        if key in self._tables.definitions or key in self._staged.definitions:
            raise _conflict(f"definition {record.process_id} v{record.version}")
        self._staged.definitions[key] = record

    def commit(self) -> None:
        """Merge the staged rows into the tables: synchronous, so readers see all or none."""
        s, t = self._staged, self._tables
        t.definitions.update(s.definitions)
        t.instances.update(s.instances)
        t.keys.update(s.keys)
        for record in s.tasks.values():
            t.put_task(record)
        for iid, by_seq in s.events.items():
            t.events.setdefault(iid, {}).update(by_seq)
        for timer_id, timer in s.timers.items():
            if timer is None:
                t.timers.pop(timer_id, None)
            else:
                t.timers[timer_id] = timer
        t.orders = self._orders
        for r in s.outbox:
            t.outbox_id += 1
            t.outbox[t.outbox_id] = replace(r, id=t.outbox_id)
        self._staged = _Staged()
