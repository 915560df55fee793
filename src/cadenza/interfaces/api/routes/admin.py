"""Administration: users, workspaces and their members, API keys, the server's settings.

Users, workspaces and settings belong to system admins (``system``). Members and API keys
belong to a workspace's admins (``manage``), and only in the workspace they are acting in: a
workspace id other than the caller's current one is not found, unless the caller is a system
admin, so nobody learns which workspaces exist elsewhere. A workspace admin changes and
removes members; adding a user who is not a member yet takes a system admin, so a workspace
admin cannot learn which usernames exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status

from cadenza.application.audit import NEW_ID, Target
from cadenza.application.identity import Permission, Principal, Role
from cadenza.application.ports_api import User, Workspace
from cadenza.domain.errors import Conflict, NotFound
from cadenza.domain.json import JSONObject
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.routes.auth import no_store
from cadenza.interfaces.api.schemas_admin import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    MemberIn,
    MemberOut,
    UserDetailOut,
    UserIn,
    UserPatch,
    WorkspaceIn,
    WorkspaceOut,
)
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["admin"])
_NO_CONTENT = status.HTTP_204_NO_CONTENT
NO_MEMBER = "no such member in this workspace (a system admin adds new members)"


async def _workspace(
    svc: ApiServices, p: Principal, workspace_id: str, change: bool = False
) -> Workspace:
    """The workspace if the caller acts in it (or is a system admin); else NotFound.
    ``change``: Conflict when it is being deleted (docs/workspaces.md)."""
    found = None
    if workspace_id == p.workspace_id or p.is_system_admin:
        found = await svc.identity.store.workspace(workspace_id)
    if found is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    if change and found.deleting:
        raise Conflict(f"workspace {workspace_id!r} is being deleted")
    return found


async def _target(svc: ApiServices, p: Principal, workspace_id: str, ref: str, add: bool) -> User:
    """The user a member route names, by id or username (a workspace admin may not list users
    to find ids). Only a system admin may name someone who is not yet a member (``add``): for
    anyone else a user who exists but is not a member and a user who does not exist are the
    same 404, so these routes cannot be used to test which usernames exist."""
    store = svc.identity.store
    found = await store.user(ref) or await store.user_by_name(ref)
    members = await store.members(workspace_id)
    if found is not None and (found.id in members or (add and p.is_system_admin)):
        return found
    if found is None and p.is_system_admin:
        raise NotFound(f"no user {ref!r}")
    raise NotFound(NO_MEMBER)


def _not_self(p: Principal, user: User, what: str) -> None:
    """Refuse changes that could lock the caller out; another admin has to make them."""
    if p.user_id == user.id and not p.is_system_admin:
        raise Conflict(f"you cannot {what} yourself; ask another admin")


# ---- users ----------------------------------------------------------------------------------
@router.get("/users", tags=["users"])
async def list_users(p: Caller, svc: Svc) -> list[UserDetailOut]:
    p.require(Permission.SYSTEM)
    return [UserDetailOut.of(u) for u in await svc.identity.store.users()]


@router.post("/users", tags=["users"], status_code=status.HTTP_201_CREATED)
async def create_user(body: UserIn, p: Caller, svc: Svc) -> UserDetailOut:
    """A new user; give them a workspace with ``PUT /workspaces/{id}/members/{user_id}``."""
    p.require(Permission.SYSTEM)
    after: JSONObject = {"username": body.username, "is_admin": body.is_admin}
    async with act(svc, p, "user.create", Target("user", NEW_ID), after=after):
        user = await svc.identity.create_user(body.username, body.password, is_admin=body.is_admin)
    return UserDetailOut.of(user)


@router.patch("/users/{user_id}", tags=["users"])
async def update_user(user_id: str, body: UserPatch, p: Caller, svc: Svc) -> UserDetailOut:
    """Disable or enable a user, grant or take system admin, set a new password."""
    p.require(Permission.SYSTEM)
    user = await svc.identity.store.user(user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id!r}")
    if user.id == p.user_id and (body.disabled or body.is_admin is False):
        raise Conflict("you cannot disable yourself or drop your own admin rights")
    before: JSONObject = {"disabled": user.disabled, "is_admin": user.is_admin}
    after: JSONObject = {
        k: v
        for k, v in {"disabled": body.disabled, "is_admin": body.is_admin}.items()
        if v is not None
    }
    if body.password is not None:
        after["password_changed"] = True  # that it changed; never the password
    async with act(svc, p, "user.update", Target("user", user_id), before=before, after=after):
        changed = await svc.identity.update_user(
            user_id, disabled=body.disabled, is_admin=body.is_admin, password=body.password
        )
    return UserDetailOut.of(changed)


@router.delete("/users/{user_id}/sessions", tags=["users"], status_code=_NO_CONTENT)
async def revoke_sessions(user_id: str, p: Caller, svc: Svc) -> Response:
    """Sign a user out everywhere: every session's tokens stop working (system admins)."""
    p.require(Permission.SYSTEM)
    async with act(svc, p, "user.revoke_sessions", Target("user", user_id)):
        await svc.identity.revoke_sessions(user_id)
    return Response(status_code=_NO_CONTENT)


# ---- workspaces -----------------------------------------------------------------------------
@router.get("/workspaces", tags=["workspaces"])
async def list_workspaces(p: Caller, svc: Svc) -> list[WorkspaceOut]:
    """System admins: every workspace; others: the workspaces they belong to (an API key:
    its own)."""
    store = svc.identity.store
    spaces = await store.workspaces()
    if p.is_system_admin:
        return [WorkspaceOut.of(w) for w in spaces]
    mine = set(await store.memberships(p.user_id)) if p.user_id else {p.workspace_id}
    return [WorkspaceOut.of(w) for w in spaces if w.id in mine]


@router.post("/workspaces", tags=["workspaces"], status_code=status.HTTP_201_CREATED)
async def create_workspace(body: WorkspaceIn, p: Caller, svc: Svc) -> WorkspaceOut:
    p.require(Permission.SYSTEM)
    target = Target("workspace", NEW_ID)
    async with act(svc, p, "workspace.create", target, after={"name": body.name}):
        created = await svc.identity.create_workspace(body.name)
    return WorkspaceOut.of(created)


@router.get("/workspaces/{workspace_id}", tags=["workspaces"])
async def get_workspace(workspace_id: str, p: Caller, svc: Svc) -> WorkspaceOut:
    p.require(Permission.READ)
    return WorkspaceOut.of(await _workspace(svc, p, workspace_id))


@router.get("/workspaces/{workspace_id}/members", tags=["workspaces"])
async def list_members(workspace_id: str, p: Caller, svc: Svc) -> list[MemberOut]:
    await _workspace(svc, p, workspace_id)
    p.require(Permission.MANAGE)
    store = svc.identity.store
    out = []
    for user_id, role in (await store.members(workspace_id)).items():
        user = await store.user(user_id)
        if user is not None:
            out.append(MemberOut(user_id=user.id, username=user.username, role=Role(role)))
    return sorted(out, key=lambda m: m.username)


@router.put("/workspaces/{workspace_id}/members/{user_id}", tags=["workspaces"])
async def set_member(
    workspace_id: str, user_id: str, body: MemberIn, p: Caller, svc: Svc
) -> MemberOut:
    """Change a member's role (workspace admins), or add a user (system admins only)."""
    await _workspace(svc, p, workspace_id, change=True)
    p.require(Permission.MANAGE)
    user = await _target(svc, p, workspace_id, user_id, add=True)
    _not_self(p, user, "change the role of")
    old = (await svc.identity.store.members(workspace_id)).get(user.id)
    target = Target("membership", user.id, workspace_id)
    change: dict[str, JSONObject] = {"before": {"role": old}, "after": {"role": body.role.value}}
    async with act(svc, p, "membership.set", target, **change):
        await svc.identity.store.set_member(workspace_id, user.id, body.role.value)
    return MemberOut(user_id=user.id, username=user.username, role=body.role)


@router.delete(
    "/workspaces/{workspace_id}/members/{user_id}", tags=["workspaces"], status_code=_NO_CONTENT
)
async def remove_member(workspace_id: str, user_id: str, p: Caller, svc: Svc) -> Response:
    await _workspace(svc, p, workspace_id, change=True)
    p.require(Permission.MANAGE)
    user = await _target(svc, p, workspace_id, user_id, add=False)
    _not_self(p, user, "remove")
    old = (await svc.identity.store.members(workspace_id)).get(user.id)
    target = Target("membership", user.id, workspace_id)
    async with act(svc, p, "membership.remove", target, before={"role": old}):
        await svc.identity.store.set_member(workspace_id, user.id, None)
    return Response(status_code=_NO_CONTENT)


# ---- API keys -------------------------------------------------------------------------------
@router.get("/api-keys", tags=["api-keys"])
async def list_keys(p: Caller, svc: Svc) -> list[ApiKeyOut]:
    """The current workspace's keys (never their secrets or hashes)."""
    p.require(Permission.MANAGE)
    return [ApiKeyOut.of(k) for k in await svc.identity.store.keys(p.workspace_id)]


@router.post(
    "/api-keys",
    tags=["api-keys"],
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(no_store)],
)
async def create_key(body: ApiKeyIn, p: Caller, svc: Svc) -> ApiKeyCreated:
    """A key for the current workspace with a role no higher than the caller's. The
    ``secret`` is in this response only: it is stored hashed. The key never acts with more
    than its creator's rights at the time: disabling the creator or removing their
    membership stops it."""
    after: JSONObject = {"name": body.name, "role": body.role.value, "ttl_s": body.ttl_s}
    async with act(svc, p, "api_key.create", Target("api_key", NEW_ID), after=after):
        key, secret = await svc.identity.create_key(p, body.name, body.role, body.ttl_s)
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), secret=secret)


@router.delete("/api-keys/{key_id}", tags=["api-keys"], status_code=_NO_CONTENT)
async def revoke_key(key_id: str, p: Caller, svc: Svc) -> Response:
    """Revoke a key of the current workspace: it is refused from now on."""
    p.require(Permission.MANAGE)
    async with act(svc, p, "api_key.revoke", Target("api_key", key_id)):
        revoked = await svc.identity.store.revoke_key(p.workspace_id, key_id)
        if not revoked:
            raise NotFound(f"no API key {key_id!r}")
    return Response(status_code=_NO_CONTENT)


# ---- settings -------------------------------------------------------------------------------
@router.get("/settings", tags=["settings"])
async def settings(request: Request, p: Caller) -> dict[str, Any]:
    """The server's effective settings that are safe to show (system admins)."""
    p.require(Permission.SYSTEM)
    view: dict[str, Any] = dict(request.app.state.config.settings_view)
    return view
