"""The records of one run: its tasks and the scopes they run in.

A ``Task`` is one node's execution in one scope (its status, attempt, lease, output); a
``Scope`` is a level of iteration (the root, or one item of a loop or map node, keyed by
``child_scope_key``). ``instance.Instance`` keeps both, changed only by replaying events
(``instance_apply``); the stores persist tasks as rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.status import ACTIVE_TASK, ScopeStatus, TaskStatus

ROOT_SCOPE = ""


@dataclass
class Task:
    id: str
    scope: str
    node_id: str
    node_type: str
    status: TaskStatus
    created_at: float
    updated_at: float
    attempt: int = 1
    available_at: float = 0.0
    output: JSON = None
    error: str | None = None
    ports: tuple[str, ...] = ()
    handled: bool = False
    detail: JSONObject = field(default_factory=dict)
    leased_to: str | None = None
    lease_token: str | None = None
    lease_expires_at: float | None = None
    lease_changed: bool = False
    steps: list[JSONObject] = field(default_factory=list)  # of the current attempt
    usage: JSONObject = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_TASK


@dataclass
class Scope:
    key: str
    parent: str
    owner: str
    index: int
    path: tuple[str, ...]
    item: JSON = None
    status: ScopeStatus = ScopeStatus.ACTIVE
    output: JSON = None
    stop: bool = False
    error: str | None = None


def child_scope_key(parent: str, owner: str, index: int) -> str:
    return f"{parent}/{owner}[{index}]"
