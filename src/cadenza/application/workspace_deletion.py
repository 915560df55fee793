"""Deleting a workspace (system admins; docs/workspaces.md): the request marks it
``deleting`` and the background job (``workspace_deletion_job``) removes what it owned.

The request is refused (Conflict, 409) while any instance of the workspace is under a legal
hold: a hold means "keep this", and deleting the workspace would delete the instance. The
holds are listed in the refusal; clear them first (``DELETE .../legal-hold``). From the
moment the request commits the workspace's API keys are revoked and every principal acting in
it is read-only (``Principal.deleting``), so nothing new starts there.
"""

from __future__ import annotations

from collections.abc import Callable

from cadenza.application.ports import Clock
from cadenza.application.ports_api import IdentityStore, Workspace
from cadenza.application.ports_workspaces import (
    DeletionProgress,
    DeletionRequest,
    WorkspaceDeletionStore,
)
from cadenza.application.roles import Permission, Principal
from cadenza.domain.errors import Conflict, NotFound

DEFAULT_WORKSPACE = "default"
SHOWN_HOLDS = 20  # instance ids named in the refusal (the count says how many in all)


class WorkspaceDeletion:
    def __init__(
        self,
        store: WorkspaceDeletionStore,
        identity: IdentityStore,
        clock: Clock,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._identity = identity
        self._clock = clock
        self._wake = wake  # the job of this process looks at once (others: within interval_s)

    async def workspace(
        self,
        p: Principal,
        workspace_id: str,
        permission: Permission = Permission.SYSTEM,
        *,
        reading: bool = False,
    ) -> Workspace:
        """The workspace if ``p`` acts in it (or is a system admin) with ``permission``;
        NotFound for anyone else, so nobody learns which workspaces exist elsewhere.
        ``reading``: allowed while the workspace is being deleted."""
        found = None
        if workspace_id == p.workspace_id or p.is_system_admin:
            found = await self._identity.workspace(workspace_id)
        if found is None:
            raise NotFound(f"no workspace {workspace_id!r}")
        if reading:
            p.require_to_read(permission)
        else:
            p.require(permission)
        return found

    async def request(self, p: Principal, workspace: Workspace) -> DeletionProgress:
        """Mark ``workspace`` deleting (idempotent: a second request changes nothing)."""
        p.require(Permission.SYSTEM)
        if workspace.id == DEFAULT_WORKSPACE:
            raise Conflict("the default workspace cannot be deleted")
        if not workspace.deleting:
            held = await self.store.holds(workspace.id)
            if held:
                shown = ", ".join(held[:SHOWN_HOLDS]) + (" ..." if len(held) > SHOWN_HOLDS else "")
                raise Conflict(
                    f"{len(held)} instance(s) of workspace {workspace.id!r} are under a legal "
                    f"hold: {shown}; clear the holds before deleting the workspace"
                )
            request = DeletionRequest(workspace.id, workspace.name, self._clock.now(), p.subject)
            await self.store.mark(request)
        self._wake()
        return await self.progress(p, workspace.id)

    async def progress(self, p: Principal, workspace_id: str) -> DeletionProgress:
        """Rows left per table (of an active workspace: what a deletion would remove)."""
        await self.workspace(p, workspace_id, Permission.MANAGE, reading=True)
        found = await self.store.progress(workspace_id)
        if found is None:
            raise NotFound(f"no workspace {workspace_id!r} (a finished deletion leaves none)")
        return found
