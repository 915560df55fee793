"""Retention use cases for the API: a workspace's policy (its admins and system admins) and
legal holds on instances (set and cleared by the workspace's admins, seen by its readers).

A workspace without a policy of its own follows the system default (settings
``retention_finished_s`` / ``retention_failed_s``), which keeps everything unless configured.
The caller's access to the workspace named in a route is checked by the route (as for
members and secrets); instances are looked up in the caller's workspace only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.application.identity import Permission, Principal
from cadenza.application.ports import Clock
from cadenza.application.ports_retention import LegalHold, RetentionStore, StoredPolicy
from cadenza.domain.errors import NotFound
from cadenza.domain.retention import RetentionPolicy

MAX_REASON_CHARS = 500  # a legal hold's reason (a case number, a ticket)
MAX_HOLDS_LISTED = 1000  # holds are set by hand, one by one: a page is not worth a cursor


@dataclass(frozen=True)
class PolicyView:
    """The policy that applies to a workspace and where it comes from."""

    workspace_id: str
    policy: RetentionPolicy
    source: str  # "workspace": its own; "default": the system default from settings
    updated_at: float | None = None
    updated_by: str | None = None


class Retention:
    def __init__(self, store: RetentionStore, clock: Clock, default: RetentionPolicy) -> None:
        self.store = store
        self._clock = clock
        self.default = default

    # ---- policies (the route checked that ``p`` may act on ``workspace_id``) ------------------
    async def policy(self, p: Principal, workspace_id: str) -> PolicyView:
        p.require(Permission.MANAGE)
        return await self._view(workspace_id)

    async def set_policy(
        self, p: Principal, workspace_id: str, policy: RetentionPolicy
    ) -> PolicyView:
        p.require(Permission.MANAGE)
        await self.store.put_policy(
            StoredPolicy(workspace_id, policy, self._clock.now(), p.subject)
        )
        return await self._view(workspace_id)

    async def reset_policy(self, p: Principal, workspace_id: str) -> PolicyView:
        """Back to the system default."""
        p.require(Permission.MANAGE)
        await self.store.delete_policy(workspace_id)
        return await self._view(workspace_id)

    async def _view(self, workspace_id: str) -> PolicyView:
        own = await self.store.policy(workspace_id)
        if own is None:
            return PolicyView(workspace_id, self.default, "default")
        return PolicyView(workspace_id, own.policy, "workspace", own.updated_at, own.updated_by)

    # ---- legal holds on instances of the caller's workspace ------------------------------------
    async def hold(self, p: Principal, instance_id: str) -> LegalHold | None:
        p.require(Permission.READ)
        found = await self.store.hold(p.workspace_id, instance_id)
        if found is None and not await self.store.instance_exists(p.workspace_id, instance_id):
            raise NotFound(f"instance {instance_id!r} not found")
        return found

    async def holds(self, p: Principal, workspace_id: str) -> list[LegalHold]:
        """The workspace's holds, newest first (at most ``MAX_HOLDS_LISTED``): what retention
        keeps whatever its age, for an admin to review and release."""
        p.require(Permission.READ)
        return await self.store.holds(workspace_id, MAX_HOLDS_LISTED)

    async def set_hold(self, p: Principal, instance_id: str, reason: str | None) -> LegalHold:
        p.require(Permission.MANAGE)
        hold = LegalHold(instance_id, p.workspace_id, reason, p.subject, self._clock.now())
        stored = await self.store.set_hold(hold)
        if stored is None:
            raise NotFound(f"instance {instance_id!r} not found")
        return stored

    async def clear_hold(self, p: Principal, instance_id: str) -> None:
        p.require(Permission.MANAGE)
        if not await self.store.clear_hold(p.workspace_id, instance_id) and not (
            await self.store.instance_exists(p.workspace_id, instance_id)
        ):
            raise NotFound(f"instance {instance_id!r} not found")
