"""Live progress of one instance in the terminal: one row per node, coloured by status."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cadenza.domain import events as ev

_STYLE = {
    "pending": "dim",
    "scheduled": "yellow",
    "running": "cyan",
    "waiting": "magenta",
    "completed": "green",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "red dim",
}


@dataclass
class _Row:
    node: str
    status: str = "pending"
    started: float | None = None
    finished: float | None = None
    attempt: int = 1
    note: str = ""


@dataclass
class Progress:
    """Folds the engine's committed events into a table (instances of one run and children)."""

    node_order: list[str]
    root: str = ""
    rows: dict[str, _Row] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    status: str = "running"

    def __post_init__(self) -> None:
        for node in self.node_order:
            self.rows[node] = _Row(node)

    backlog: list[ev.Event] = field(default_factory=list)

    def feed(self, events: list[tuple[int, ev.Event]]) -> None:
        now = time.monotonic()
        for _, e in events:
            if not self.root:
                self.backlog.append(e)  # the start batch commits before its id is returned
            elif e.instance_id == self.root:
                self._fold(e, now)

    def follow(self, instance_id: str) -> None:
        self.root = instance_id
        now = time.monotonic()
        for e in self.backlog:
            if e.instance_id == instance_id:
                self._fold(e, now)
        self.backlog.clear()

    def _fold(self, e: ev.Event, now: float) -> None:
        if isinstance(e, ev.TaskScheduled | ev.TaskWaiting | ev.TaskSkipped):
            key = e.node_id if not e.scope else f"{e.node_id} {e.scope}"
            self.tasks[e.task_id] = key
            row = self.rows.setdefault(key, _Row(key))
            if isinstance(e, ev.TaskSkipped):
                row.status = "skipped"
            else:
                row.status = "waiting" if isinstance(e, ev.TaskWaiting) else "running"
                row.started = row.started or now
                if isinstance(e, ev.TaskScheduled):
                    row.attempt = e.attempt
            return
        task_id = getattr(e, "task_id", None)
        if isinstance(task_id, str) and task_id in self.tasks:
            row = self.rows[self.tasks[task_id]]
            if isinstance(e, ev.TaskCompleted):
                row.status, row.finished = "completed", now
                row.note = f"recovered: {e.error}" if e.error else ""
            elif isinstance(e, ev.TaskFailed):
                row.status, row.finished, row.note = "failed", now, e.error
            elif isinstance(e, ev.TaskCancelled):
                row.status, row.finished = "cancelled", now
            elif isinstance(e, ev.TaskTokens):
                row.note = (row.note + e.text)[-60:]
            elif isinstance(e, ev.TaskRetryScheduled):
                row.status, row.attempt, row.note = "scheduled", e.attempt, f"retrying: {e.error}"
        elif isinstance(e, ev.InstanceCompleted):
            self.status = "completed"
        elif isinstance(e, ev.InstanceFailed):
            self.status = "failed"
        elif isinstance(e, ev.InstanceCancelled):
            self.status = "cancelled"

    def render(self) -> RenderableType:
        now = time.monotonic()
        table = Table(
            title=f"instance {self.root[:12]}  [{self.status}]  {now - self.started:.1f}s"
        )
        for col in ("node", "status", "attempt", "elapsed", "note"):
            table.add_column(col)
        for row in self.rows.values():
            elapsed = ""
            if row.started is not None:
                elapsed = f"{(row.finished or now) - row.started:.2f}s"
            table.add_row(
                row.node,
                Text(row.status, style=_STYLE.get(row.status, "")),
                str(row.attempt),
                elapsed,
                row.note[:60],
            )
        done = sum(1 for r in self.rows.values() if r.status in ("completed", "skipped"))
        return Group(table, Text(f"{done}/{len(self.rows)} nodes done"))
