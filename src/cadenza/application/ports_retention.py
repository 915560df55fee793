"""The retention port: workspace policies, legal holds, and deleting due instances in batches.

The adapter (``infrastructure.sql.retention``) keeps policies and holds in the database and
deletes an instance together with every row of it (events, tasks, timers, feed, outbox,
assignments: every table with an ``instance_id`` column), one batch per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.domain.retention import Cutoffs, RetentionPolicy


@dataclass(frozen=True)
class StoredPolicy:
    workspace_id: str
    policy: RetentionPolicy
    updated_at: float
    updated_by: str  # user:ID or key:ID


@dataclass(frozen=True)
class LegalHold:
    """An instance that retention never deletes while the hold is set."""

    instance_id: str
    workspace_id: str
    reason: str | None
    set_by: str  # user:ID or key:ID
    set_at: float


@dataclass(frozen=True)
class PurgeScope:
    """Which workspaces one batch looks at: ``workspace`` alone, or (``workspace`` None)
    every workspace but those ``excluding`` (the ones with a policy of their own)."""

    workspace: str | None = None
    excluding: frozenset[str] = field(default_factory=frozenset)


class RetentionStore(Protocol):
    async def policy(self, workspace_id: str) -> StoredPolicy | None: ...

    async def policies(self) -> list[StoredPolicy]: ...

    async def put_policy(self, stored: StoredPolicy) -> None: ...

    async def delete_policy(self, workspace_id: str) -> bool:
        """False when the workspace had no policy of its own."""
        ...

    async def hold(self, workspace_id: str, instance_id: str) -> LegalHold | None: ...

    async def holds(self, workspace_id: str, limit: int) -> list[LegalHold]:
        """The workspace's holds, newest first, at most ``limit``."""
        ...

    async def instance_exists(self, workspace_id: str, instance_id: str) -> bool: ...

    async def set_hold(self, hold: LegalHold) -> LegalHold | None:
        """Set (or replace) the hold; None when the instance is not in the workspace. The
        instance row is locked while the hold is written, so a purge that has taken it
        either deleted it first (None) or skips it."""
        ...

    async def clear_hold(self, workspace_id: str, instance_id: str) -> bool:
        """False when the instance had no hold."""
        ...

    async def purge(self, scope: PurgeScope, cutoffs: Cutoffs, limit: int) -> Mapping[str, int]:
        """Delete up to ``limit`` due instances of ``scope`` (finished or failed before the
        cutoffs, not held, not the child of an instance still present) and every row of
        theirs, in one transaction; rows deleted per table (``instances`` first)."""
        ...
