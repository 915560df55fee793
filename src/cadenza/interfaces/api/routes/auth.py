"""Login, token refresh and the caller's own identity."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cadenza.application.identity import Permission
from cadenza.interfaces.api.guard import Caller, Svc, limit_by_ip
from cadenza.interfaces.api.schemas import (
    LoginIn,
    MembershipOut,
    MeOut,
    RefreshIn,
    TokensOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/login", dependencies=[Depends(limit_by_ip)])
async def login(body: LoginIn, svc: Svc) -> TokensOut:
    """Exchange a username and password for a short-lived access token and a refresh token."""
    pair = await svc.identity.login(body.username, body.password)
    return TokensOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/auth/refresh", dependencies=[Depends(limit_by_ip)])
async def refresh(body: RefreshIn, svc: Svc) -> TokensOut:
    pair = await svc.identity.refresh(body.refresh_token)
    return TokensOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.get("/me")
async def me(p: Caller, svc: Svc) -> MeOut:
    """Who the credentials belong to, the current workspace and role, and the workspaces
    the user may switch to (with ``X-Workspace``)."""
    store = svc.identity.store
    user = await store.user(p.user_id) if p.user_id else None
    if user is None:
        ws = await store.workspace(p.workspace_id)
        spaces = [MembershipOut(id=p.workspace_id, name=ws.name if ws else "", role=p.role)]
    elif user.is_admin:
        spaces = [
            MembershipOut(id=w.id, name=w.name, role="admin") for w in await store.workspaces()
        ]
    else:
        roles = await store.memberships(user.id)
        spaces = [
            MembershipOut(id=w.id, name=w.name, role=roles[w.id])
            for w in await store.workspaces()
            if w.id in roles
        ]
    return MeOut(
        user=UserOut(id=user.id, username=user.username, is_admin=user.is_admin) if user else None,
        api_key_id=p.key_id,
        workspace_id=p.workspace_id,
        role=p.role.value,
        permissions=sorted(x.value for x in Permission if p.can(x)),
        workspaces=spaces,
    )
