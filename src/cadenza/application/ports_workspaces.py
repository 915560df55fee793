"""The workspace-deletion port: mark a workspace ``deleting``, then remove everything it owned
in short batches, then the workspace row itself (docs/workspaces.md).

The adapter (``infrastructure.sql.workspace_deletion``) finds what a workspace owns by walking
the table metadata: every table with a ``workspace_id`` column, and through the workspace's
instances every table with an ``instance_id`` column (the retention purge's list). Only tables
marked ``info={"workspace_deletion": "keep"}`` (the audit log) outlive the workspace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.application.audit_ports import AuditEntry


@dataclass(frozen=True)
class DeletionRequest:
    workspace_id: str
    name: str
    requested_at: float
    requested_by: str  # user:ID or key:ID


@dataclass(frozen=True)
class DeletionProgress:
    """Where a deletion stands: rows still there and rows deleted so far, per table."""

    workspace_id: str
    name: str
    requested_at: float | None
    requested_by: str | None
    remaining: Mapping[str, int] = field(default_factory=dict)
    deleted: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows_left(self) -> int:
        return sum(self.remaining.values())


class WorkspaceDeletionStore(Protocol):
    async def holds(self, workspace_id: str) -> list[str]:
        """Ids of the workspace's instances under a legal hold (deletion is refused then)."""
        ...

    async def mark(self, request: DeletionRequest) -> bool:
        """Put an active workspace into state ``deleting`` and revoke its API keys, in one
        transaction (the audit row of the request commits with it); False when it is gone
        or already deleting."""
        ...

    async def deleting(self) -> list[DeletionRequest]:
        """Workspaces waiting for the job, oldest request first."""
        ...

    async def progress(self, workspace_id: str) -> DeletionProgress | None: ...

    async def unfinished(self, workspace_id: str, limit: int) -> list[str]:
        """Ids of the workspace's instances that are not finished yet (to be cancelled)."""
        ...

    async def purge(self, workspace_id: str, limit: int) -> Mapping[str, int]:
        """One transaction: up to ``limit`` finished instances of the workspace with every
        row of theirs, or (when none is left) up to ``limit`` rows of one other table of the
        workspace; adds the counts to the workspace's ``deleted_rows``. Rows deleted per
        table; empty when nothing but unfinished or held instances is left. Idempotent: a
        batch rolled back (a crash) is simply done again."""
        ...

    async def finish(
        self, workspace_id: str, audit: Callable[[Mapping[str, int]], AuditEntry]
    ) -> Mapping[str, int] | None:
        """Remove the workspace row when nothing of it is left, with the audit row
        ``audit(deleted_rows)`` in the same transaction; its ``deleted_rows`` then, or None
        when rows are still left (or it is gone already)."""
        ...


class WorkspaceBlobs(Protocol):
    """The hook for a blob store (payloads offloaded out of the rows): remove every blob of a
    workspace. Called by the deletion job before the workspace row goes; must be idempotent
    (a resumed job calls it again)."""

    async def delete_workspace_blobs(self, workspace_id: str) -> int:
        """How many blobs were removed."""
        ...


class NoBlobs:
    """No blob store configured: nothing to remove."""

    async def delete_workspace_blobs(self, workspace_id: str) -> int:
        return 0
