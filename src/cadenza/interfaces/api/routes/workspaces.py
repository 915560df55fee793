"""Deleting a workspace (system admins; docs/workspaces.md): ``DELETE /workspaces/{id}`` marks
it ``deleting`` and answers 202 with the URL of its progress; the background job removes what
it owned in batches, then the workspace. ``GET /workspaces/{id}/deletion`` shows the rows
left per table until the workspace is gone (then 404).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field

from cadenza.application.audit import Target
from cadenza.application.identity import Permission
from cadenza.application.ports_api import DELETING
from cadenza.application.ports_workspaces import DeletionProgress
from cadenza.application.workspace_deletion import WorkspaceDeletion
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["workspaces"])


class DeletionOut(BaseModel):
    workspace_id: str
    name: str
    state: str = Field(
        description="'deleting' until the job removed the workspace (then 404); 'active': "
        "not being deleted (``remaining``: what a deletion would remove)"
    )
    requested_at: float | None
    requested_by: str | None = Field(description="user:ID or key:ID of the request")
    remaining: dict[str, int] = Field(description="rows left per table (tables with none left out)")
    rows_left: int
    deleted: dict[str, int] = Field(description="rows deleted so far per table")
    status_url: str

    @classmethod
    def of(cls, d: DeletionProgress, state: str = DELETING) -> DeletionOut:
        return cls(
            workspace_id=d.workspace_id,
            name=d.name,
            state=state,
            requested_at=d.requested_at,
            requested_by=d.requested_by,
            remaining=dict(d.remaining),
            rows_left=d.rows_left,
            deleted=dict(d.deleted),
            status_url=status_url(d.workspace_id),
        )


def status_url(workspace_id: str) -> str:
    return f"/api/v1/workspaces/{workspace_id}/deletion"


def _service(svc: ApiServices) -> WorkspaceDeletion:
    if svc.workspace_deletion is None:
        raise HTTPException(503, "workspace deletion is not available on this server")
    return svc.workspace_deletion


@router.delete(
    "/workspaces/{workspace_id}",
    status_code=status.HTTP_202_ACCEPTED,
    responses=documented(503),
)
async def delete_workspace(
    workspace_id: str, p: Caller, svc: Svc, response: Response
) -> DeletionOut:
    """Delete the workspace and everything it owned (system admins): from now on nothing
    starts in it and its API keys are revoked; its running instances are cancelled and the
    background job deletes its rows in batches. 409 while an instance in it is under a legal
    hold (the holds are listed), or for the default workspace. Poll ``status_url``."""
    p.require(Permission.SYSTEM)
    deletion = _service(svc)
    found = await deletion.workspace(p, workspace_id)
    if found.deleting:  # asked again: the same job, nothing new to record
        progress = await deletion.request(p, found)
    else:
        target = Target("workspace", workspace_id, workspace_id)
        async with act(svc, p, "workspace.delete", target, before={"name": found.name}):
            progress = await deletion.request(p, found)
    response.headers["Location"] = status_url(workspace_id)
    return DeletionOut.of(progress)


@router.get("/workspaces/{workspace_id}/deletion", responses=documented(503))
async def deletion_progress(workspace_id: str, p: Caller, svc: Svc) -> DeletionOut:
    """Where the deletion of a workspace stands (its admins, system admins): rows left and
    deleted per table; 404 once it is done (the audit log then has its ``workspace.deleted``
    row with the counts)."""
    deletion = _service(svc)
    found = await deletion.workspace(p, workspace_id, Permission.MANAGE, reading=True)
    return DeletionOut.of(await deletion.progress(p, workspace_id), found.state)
