"""A workspace's secrets: set, replace and delete (admins), list names (editors).

As for members, a workspace id other than the caller's current one is not found, unless the
caller is a system admin. No route returns a value, not even to the admin who set it: a value
goes out only in the request of an ``http`` node that references it as ``{{ secrets.NAME }}``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from cadenza.application.audit import Target
from cadenza.application.identity import Permission, Principal
from cadenza.application.secrets import (
    SecretInfo,
    SecretInvalid,
    SecretsUnavailable,
    WorkspaceSecrets,
)
from cadenza.domain.errors import Conflict, NotFound
from cadenza.domain.secrets import MAX_VALUE_CHARS, NAME_PATTERN
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.schemas import Strict
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["secrets"])
SecretName = Path(pattern=NAME_PATTERN, description="letters, digits and '_'; at most 64")


class SecretIn(Strict):
    value: str = Field(
        min_length=1,
        max_length=MAX_VALUE_CHARS,
        description="stored encrypted; never shown again by any route",
    )


class SecretOut(BaseModel):
    """A secret as anyone may see it: its name and who set it when, never its value."""

    name: str
    created_at: float
    updated_at: float
    updated_by: str = Field(description="user:ID or key:ID of whoever set the current value")

    @classmethod
    def of(cls, s: SecretInfo) -> SecretOut:
        return cls(
            name=s.name, created_at=s.created_at, updated_at=s.updated_at, updated_by=s.updated_by
        )


async def _vault(
    svc: ApiServices, p: Principal, workspace_id: str, permission: Permission
) -> WorkspaceSecrets:
    """The secrets service, once the caller may act on ``workspace_id`` with ``permission``."""
    found = None
    if workspace_id == p.workspace_id or p.is_system_admin:
        found = await svc.identity.store.workspace(workspace_id)
    if found is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    p.require(permission)
    if found.deleting and permission is not Permission.READ:
        raise Conflict(f"workspace {workspace_id!r} is being deleted")
    if svc.secrets is None:
        raise HTTPException(503, "secrets are not configured on this server")
    return svc.secrets


@router.get("/workspaces/{workspace_id}/secrets")
async def list_secrets(workspace_id: str, p: Caller, svc: Svc) -> list[SecretOut]:
    """The workspace's secrets by name (editors and admins), without values."""
    vault = await _vault(svc, p, workspace_id, Permission.EDIT)
    return [SecretOut.of(s) for s in await vault.list(workspace_id)]


@router.put("/workspaces/{workspace_id}/secrets/{name}", responses=documented(503))
async def put_secret(
    workspace_id: str, body: SecretIn, p: Caller, svc: Svc, name: str = SecretName
) -> SecretOut:
    """Create or replace a secret of the workspace (admins). 503 when the server has no key
    to seal it with."""
    vault = await _vault(svc, p, workspace_id, Permission.MANAGE)
    # the name only: the value never reaches the audit log
    target = Target("secret", name, workspace_id)
    try:
        async with act(svc, p, "secret.put", target):
            info = await vault.put(workspace_id, name, body.value, p.subject)
    except SecretInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    except SecretsUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    return SecretOut.of(info)


@router.delete("/workspaces/{workspace_id}/secrets/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(workspace_id: str, p: Caller, svc: Svc, name: str = SecretName) -> Response:
    """Delete a secret of the workspace (admins); tasks using it fail from then on."""
    vault = await _vault(svc, p, workspace_id, Permission.MANAGE)
    async with act(svc, p, "secret.delete", Target("secret", name, workspace_id)):
        await vault.delete(workspace_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
