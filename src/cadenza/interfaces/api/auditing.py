"""How routes append to the audit log: ``act`` wraps a change (its SQL transaction takes the
row), ``login_attempt`` records a sign-in either way. Without an auditor these do nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from cadenza.application.audit import Target, audited
from cadenza.application.identity import AuthError, Principal
from cadenza.domain.json import JSON, JSONObject
from cadenza.interfaces.api.services import ApiServices

T = TypeVar("T")


def act(
    svc: ApiServices,
    p: Principal | None,
    action: str,
    target: Target,
    *,
    before: Mapping[str, JSON] | None = None,
    after: Mapping[str, JSON] | None = None,
) -> AbstractAsyncContextManager[object]:
    return audited(svc.audit, p, action, target, before=before, after=after)


async def record(
    svc: ApiServices,
    p: Principal | None,
    action: str,
    target: Target,
    *,
    after: Mapping[str, JSON] | None = None,
) -> None:
    """Append a row for a change already made (no transaction of ours to join)."""
    if svc.audit is not None:
        await svc.audit.record(svc.audit.entry(p, action, target, after=after))


async def login_attempt(svc: ApiServices, username: str, attempt: Awaitable[T]) -> T:
    """Run a login; a success is recorded with the new session (same transaction), a failure
    with the attempted username, the client address and the reason, never the password."""
    auditor = svc.audit
    if auditor is None:
        return await attempt
    user = await svc.identity.store.user_by_name(username)
    name = username[:80]
    target = Target("user", user.id if user else name)
    ok = auditor.entry(None, "auth.login", target, actor_name=name)
    if user is not None:
        ok = dataclasses.replace(ok, actor_type="user", actor_id=user.id)
    try:
        async with auditor.change(ok):
            return await attempt
    except AuthError:
        failed = auditor.entry(None, "auth.login_failed", target, actor_name=name)
        # the caller is told only "invalid username or password"; admins reading the log
        # may know which it was
        why = "no such user" if user is None else "user disabled" if user.disabled else None
        reason: JSONObject = {"reason": why or "wrong password"}
        await auditor.record(dataclasses.replace(failed, outcome="failed", after=reason))
        raise
