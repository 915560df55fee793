"""The process instance aggregate: tasks and scopes of one run, rebuilt from its journal.

Every change is an event applied through ``_apply`` (the functions of ``instance_apply``);
loading an instance is replaying its events, so the journal is the truth and the
instance/task rows are projections of it. Its tasks and scopes are the records of ``tasks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cadenza.domain import events as ev
from cadenza.domain.errors import Conflict
from cadenza.domain.instance_apply import APPLY
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.status import InstanceStatus
from cadenza.domain.tasks import ROOT_SCOPE, Scope, Task


@dataclass(frozen=True)
class Stamp:
    """Time and identity for the events one command records (the domain has no clock)."""

    now: float
    new_id: Callable[[], str]


class Instance:
    def __init__(self, instance_id: str) -> None:
        self.id = instance_id
        self.process_id = ""
        self.version = 0
        self.definition_hash = ""
        self.status = InstanceStatus.RUNNING
        self.inputs: JSONObject = {}
        self.vars: JSONObject = {}
        self.outputs: JSONObject | None = None
        self.error: str | None = None
        self.parent_instance_id: str | None = None
        self.workspace_id = "default"
        self.parent_task_id: str | None = None
        self.idempotency_key: str | None = None
        self.depth = 0
        self.created_at = 0.0
        self.updated_at = 0.0
        self.seq = 0
        self.tasks: dict[str, Task] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.scopes: dict[str, Scope] = {ROOT_SCOPE: Scope(ROOT_SCOPE, ROOT_SCOPE, "", 0, ())}
        self.pending: list[tuple[int, ev.Event]] = []
        # scope -> node -> {output, error, status}, kept current on every task change (by
        # ``instance_apply``) so a template context costs the visible outputs, not a scan of
        # every task
        self.results: dict[str, dict[str, JSON]] = {}
        self.new_tasks: set[str] = set()
        self.dirty_tasks: set[str] = set()

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def replay(cls, instance_id: str, events: Iterable[ev.Event]) -> Instance:
        inst = cls(instance_id)
        inst.catch_up(events)
        return inst

    def catch_up(self, events: Iterable[ev.Event]) -> None:
        """Apply already-journaled events (no new rows are written for them)."""
        for e in events:
            self._apply(e)
            self.seq += 1
        self.new_tasks.clear()
        self.dirty_tasks.clear()

    def take_pending(self) -> list[tuple[int, ev.Event]]:
        """Events recorded since the last commit, with their journal sequence numbers."""
        out, self.pending = self.pending, []
        return out

    # ---- queries -------------------------------------------------------------------------
    def task_at(self, scope: str, node_id: str) -> Task | None:
        tid = self.by_key.get((scope, node_id))
        return None if tid is None else self.tasks[tid]

    def task(self, task_id: str) -> Task:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise Conflict(f"task {task_id} does not belong to instance {self.id}") from None

    def child_scopes(self, scope: str, owner: str) -> list[Scope]:
        prefix = f"{scope}/{owner}["
        return sorted(
            (s for s in self.scopes.values() if s.key.startswith(prefix) and s.parent == scope),
            key=lambda s: s.index,
        )

    def active_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.active]

    def node_outputs(self, scope: str) -> dict[str, JSON]:
        """Outputs visible from ``scope``: its own nodes, then enclosing scopes (inner wins)."""
        chain = []
        key = scope
        while True:
            chain.append(key)
            if key == ROOT_SCOPE:
                break
            key = self.scopes[key].parent
        merged: dict[str, JSON] = {}
        for k in reversed(chain):
            merged.update(self.results.get(k, {}))
        return merged

    # ---- commands ------------------------------------------------------------------------
    def _record(self, event: ev.Event) -> None:
        self._apply(event)
        self.seq += 1
        self.pending.append((self.seq, event))

    def record(self, stamp: Stamp, event: ev.Event) -> None:
        """Record ``event``, a draft without its envelope (``Event.stamped`` fills it in from
        this instance and ``stamp``); transitions are checked on apply."""
        self._record(event.stamped(self.id, stamp.new_id(), stamp.now))

    # ---- applying ------------------------------------------------------------------------
    def _apply(self, e: ev.Event) -> None:
        handler = APPLY[type(e)]
        handler(self, e)
        self.updated_at = e.occurred_at
