"""Retention: a workspace's policy (its admins and system admins) and legal holds on instances
(set and cleared by the workspace's admins, read by anyone who may read the instance).

As for members and secrets, a workspace id other than the caller's current one is not found,
unless the caller is a system admin. Instances are looked up in the caller's workspace only.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field

from cadenza.application.audit import Target
from cadenza.application.identity import Principal
from cadenza.application.ports_retention import LegalHold
from cadenza.application.retention import MAX_REASON_CHARS, PolicyView, Retention
from cadenza.domain.errors import Conflict, NotFound
from cadenza.domain.retention import (
    MAX_RETENTION_S,
    MIN_RETENTION_S,
    PolicyInvalid,
    RetentionPolicy,
)
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.schemas import Strict
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["retention"])
_NO_CONTENT = status.HTTP_204_NO_CONTENT


class RetentionIn(Strict):
    finished_s: float | None = Field(
        default=None,
        description="completed and cancelled instances, with all their rows, are deleted this "
        "many seconds after they finished (e.g. 2592000: 30 days); null keeps them",
        ge=MIN_RETENTION_S,
        le=MAX_RETENTION_S,
    )
    failed_s: float | None = Field(
        default=None,
        description="the same for failed instances: null (keep) or at least finished_s",
        ge=MIN_RETENTION_S,
        le=MAX_RETENTION_S,
    )


class RetentionOut(BaseModel):
    workspace_id: str
    finished_s: float | None
    failed_s: float | None
    source: Literal["workspace", "default"] = Field(
        description="workspace: its own policy; default: the server's (settings)"
    )
    updated_at: float | None = None
    updated_by: str | None = None

    @classmethod
    def of(cls, v: PolicyView) -> RetentionOut:
        return cls(
            workspace_id=v.workspace_id,
            finished_s=v.policy.finished_s,
            failed_s=v.policy.failed_s,
            source="workspace" if v.source == "workspace" else "default",
            updated_at=v.updated_at,
            updated_by=v.updated_by,
        )


class LegalHoldIn(Strict):
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)


class LegalHoldOut(BaseModel):
    """Whether retention keeps the instance whatever its age."""

    instance_id: str
    held: bool
    reason: str | None = None
    set_by: str | None = Field(default=None, description="user:ID or key:ID")
    set_at: float | None = None

    @classmethod
    def of(cls, instance_id: str, h: LegalHold | None) -> LegalHoldOut:
        if h is None:
            return cls(instance_id=instance_id, held=False)
        return cls(
            instance_id=instance_id, held=True, reason=h.reason, set_by=h.set_by, set_at=h.set_at
        )


def _service(svc: ApiServices) -> Retention:
    if svc.retention is None:
        raise HTTPException(503, "retention is not available on this server")
    return svc.retention


async def _workspace(
    svc: ApiServices, p: Principal, workspace_id: str, change: bool = False
) -> Retention:
    """The service, once the caller acts in ``workspace_id`` (or is a system admin);
    ``change``: Conflict while the workspace is being deleted."""
    found = None
    if workspace_id == p.workspace_id or p.is_system_admin:
        found = await svc.identity.store.workspace(workspace_id)
    if found is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    if change and found.deleting:
        raise Conflict(f"workspace {workspace_id!r} is being deleted")
    return _service(svc)


@router.get("/workspaces/{workspace_id}/retention", responses=documented(503))
async def get_retention(workspace_id: str, p: Caller, svc: Svc) -> RetentionOut:
    """The retention policy that applies to the workspace (admins)."""
    retention = await _workspace(svc, p, workspace_id)
    return RetentionOut.of(await retention.policy(p, workspace_id))


@router.put("/workspaces/{workspace_id}/retention", responses=documented(503))
async def put_retention(workspace_id: str, body: RetentionIn, p: Caller, svc: Svc) -> RetentionOut:
    """Set the workspace's own policy (admins); both null keeps everything."""
    retention = await _workspace(svc, p, workspace_id, change=True)
    try:
        policy = RetentionPolicy(body.finished_s, body.failed_s)
    except PolicyInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    target = Target("workspace", workspace_id, workspace_id)
    after = {"finished_s": body.finished_s, "failed_s": body.failed_s}
    async with act(svc, p, "retention.set", target, after=after):
        view = await retention.set_policy(p, workspace_id, policy)
    return RetentionOut.of(view)


@router.delete(
    "/workspaces/{workspace_id}/retention", status_code=_NO_CONTENT, responses=documented(503)
)
async def delete_retention(workspace_id: str, p: Caller, svc: Svc) -> Response:
    """Drop the workspace's own policy: the server's default applies again (admins)."""
    retention = await _workspace(svc, p, workspace_id, change=True)
    async with act(svc, p, "retention.reset", Target("workspace", workspace_id, workspace_id)):
        await retention.reset_policy(p, workspace_id)
    return Response(status_code=_NO_CONTENT)


@router.get("/workspaces/{workspace_id}/legal-holds", responses=documented(503))
async def list_legal_holds(workspace_id: str, p: Caller, svc: Svc) -> list[LegalHoldOut]:
    """The workspace's legal holds, newest first (at most 1,000)."""
    retention = await _workspace(svc, p, workspace_id)
    holds = await retention.holds(p, workspace_id)
    return [LegalHoldOut.of(h.instance_id, h) for h in holds]


@router.get("/processes/instances/{instance_id}/legal-hold", responses=documented(503))
async def get_legal_hold(instance_id: str, p: Caller, svc: Svc) -> LegalHoldOut:
    """Whether the instance is under a legal hold, and who set it why."""
    return LegalHoldOut.of(instance_id, await _service(svc).hold(p, instance_id))


@router.put("/processes/instances/{instance_id}/legal-hold", responses=documented(503))
async def put_legal_hold(
    instance_id: str, p: Caller, svc: Svc, body: LegalHoldIn | None = None
) -> LegalHoldOut:
    """Keep the instance and all its rows whatever the retention policy says (admins)."""
    reason = body.reason if body is not None else None
    target = Target("instance", instance_id, p.workspace_id)
    async with act(svc, p, "instance.legal_hold", target, after={"reason": reason}):
        hold = await _service(svc).set_hold(p, instance_id, reason)
    return LegalHoldOut.of(instance_id, hold)


@router.delete(
    "/processes/instances/{instance_id}/legal-hold",
    status_code=_NO_CONTENT,
    responses=documented(503),
)
async def delete_legal_hold(instance_id: str, p: Caller, svc: Svc) -> Response:
    """Release the hold: the workspace's retention policy applies to the instance again."""
    target = Target("instance", instance_id, p.workspace_id)
    async with act(svc, p, "instance.legal_hold_release", target):
        await _service(svc).clear_hold(p, instance_id)
    return Response(status_code=_NO_CONTENT)
