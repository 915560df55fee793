"""Login, token refresh, sign-out and the caller's own identity.

Responses that carry tokens or key secrets say ``Cache-Control: no-store``: no browser or
proxy cache may keep them.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, Depends, Response, status

from cadenza.application.audit import Target
from cadenza.application.identity import Permission, Principal, Reuse
from cadenza.interfaces.api.auditing import act, login_attempt
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
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_CONTENT = status.HTTP_204_NO_CONTENT


def no_store(response: Response) -> None:
    response.headers.update(NO_STORE)


@router.post("/auth/login", dependencies=[Depends(limit_by_ip), Depends(no_store)])
async def login(body: LoginIn, svc: Svc) -> TokensOut:
    """Exchange a username and password for a short-lived access token and a refresh token
    (a new session, ended by ``/auth/logout``)."""
    pair = await login_attempt(svc, body.username, svc.identity.login(body.username, body.password))
    return TokensOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/auth/refresh", dependencies=[Depends(limit_by_ip), Depends(no_store)])
async def refresh(body: RefreshIn, svc: Svc) -> TokensOut:
    """A new access token and a new refresh token for the session, while it lasts; the
    refresh token sent stops working (presented again after the short grace window, it ends
    the whole session)."""

    def reused(reuse: Reuse) -> AbstractAsyncContextManager[object]:
        # the session's revocation and its audit row commit together; no token in the row
        after = {"session_id": reuse.session.id, "replaced_s_ago": reuse.retired_s_ago}
        return act(
            svc, None, "auth.refresh_reuse", Target("user", reuse.session.user_id), after=after
        )

    pair = await svc.identity.refresh(body.refresh_token, reused)
    return TokensOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


@router.post("/auth/logout", status_code=_NO_CONTENT)
async def logout(p: Caller, svc: Svc) -> Response:
    """End the caller's session: its refresh token and access tokens stop working, and
    streams opened with them close within ``stream_recheck_s``."""
    async with act(svc, p, "auth.logout", _me(p)):
        await svc.identity.logout(p)
    return Response(status_code=_NO_CONTENT)


@router.post("/auth/logout-all", status_code=_NO_CONTENT)
async def logout_everywhere(p: Caller, svc: Svc) -> Response:
    """End every session of the caller's user (sign out everywhere). API keys are not
    sessions: revoke them with ``DELETE /api-keys/{id}``."""
    async with act(svc, p, "auth.logout_all", _me(p)):
        await svc.identity.logout_everywhere(p)
    return Response(status_code=_NO_CONTENT)


def _me(p: Principal) -> Target:
    return Target("user", p.user_id or f"key:{p.key_id}")


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
