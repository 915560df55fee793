"""A workspace's quotas: its limits (set by system admins, read by its members) and its usage
against them. As for members and secrets, a workspace id other than the caller's current one
is not found, unless the caller is a system admin. docs/quotas.md."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from cadenza.application.audit import Target
from cadenza.application.identity import Permission, Principal
from cadenza.application.ports_quotas import QuotaLimits, Spend
from cadenza.application.quotas import Quotas, QuotaUsage
from cadenza.domain.errors import Conflict, NotFound
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.schemas import Strict
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["quotas"])
_UNSET = "null: no limit of its own (the system default applies)"
MAX_COUNT = 10**9  # bounds that fit every database's integer columns
MAX_TOKENS = 10**15
MAX_COST = 1e12


class QuotasIn(Strict):
    """A workspace's own limits; each null field takes the system default (settings
    ``quota_*``, unlimited unless configured). The whole set is replaced."""

    max_running: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description=f"instances running; {_UNSET}"
    )
    starts_per_minute: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description=f"starts per UTC minute; {_UNSET}"
    )
    tokens_per_day: int | None = Field(
        default=None, ge=0, le=MAX_TOKENS, description=f"per UTC day; {_UNSET}"
    )
    tokens_per_month: int | None = Field(
        default=None, ge=0, le=MAX_TOKENS, description=f"per UTC month; {_UNSET}"
    )
    cost_per_day: float | None = Field(
        default=None, ge=0, le=MAX_COST, description=f"per UTC day; {_UNSET}"
    )
    cost_per_month: float | None = Field(
        default=None, ge=0, le=MAX_COST, description=f"per UTC month; {_UNSET}"
    )

    def limits(self) -> QuotaLimits:
        return QuotaLimits(**self.model_dump())


class LimitsOut(BaseModel):
    """Limits; null is unlimited."""

    max_running: int | None
    starts_per_minute: int | None
    tokens_per_day: int | None
    tokens_per_month: int | None
    cost_per_day: float | None
    cost_per_month: float | None

    @classmethod
    def of(cls, limits: QuotaLimits) -> LimitsOut:
        return cls(**limits.__dict__)


class QuotasOut(BaseModel):
    workspace_id: str
    own: LimitsOut = Field(description="the workspace's own limits (null: the default applies)")
    effective: LimitsOut = Field(description="what is enforced: own limits over the defaults")


class SpendOut(BaseModel):
    period: str = Field(description="YYYY-MM-DD or YYYY-MM (UTC)")
    tokens: int = Field(description="tokens spent, and held by model turns in flight")
    cost: float

    @classmethod
    def of(cls, period: str, spend: Spend) -> SpendOut:
        return cls(period=period, tokens=spend.tokens, cost=round(spend.cost, 8))


class UsageOut(BaseModel):
    """Usage against the effective limits now."""

    workspace_id: str
    limits: LimitsOut
    running: int
    starts_this_minute: int
    today: SpendOut
    this_month: SpendOut

    @classmethod
    def of(cls, workspace_id: str, u: QuotaUsage) -> UsageOut:
        return cls(
            workspace_id=workspace_id,
            limits=LimitsOut.of(u.limits),
            running=u.running,
            starts_this_minute=u.starts_this_minute,
            today=SpendOut.of(u.day, u.today),
            this_month=SpendOut.of(u.month, u.this_month),
        )


async def _quotas(
    svc: ApiServices, p: Principal, workspace_id: str, permission: Permission
) -> Quotas:
    found = None
    if workspace_id == p.workspace_id or p.is_system_admin:
        found = await svc.identity.store.workspace(workspace_id)
    if found is None:
        raise NotFound(f"no workspace {workspace_id!r}")
    p.require(permission)
    if found.deleting and permission is not Permission.READ:
        raise Conflict(f"workspace {workspace_id!r} is being deleted")
    if svc.processes.quotas is None:
        raise HTTPException(503, "quotas are not configured on this server")
    return svc.processes.quotas


async def _out(quotas: Quotas, workspace_id: str) -> QuotasOut:
    own = await quotas.store.limits(workspace_id) or QuotaLimits()
    effective = await quotas.limits(workspace_id)
    return QuotasOut(
        workspace_id=workspace_id, own=LimitsOut.of(own), effective=LimitsOut.of(effective)
    )


@router.get("/workspaces/{workspace_id}/quotas", tags=["workspaces"], responses=documented(503))
async def get_quotas(workspace_id: str, p: Caller, svc: Svc) -> QuotasOut:
    """The workspace's own and effective limits (its members)."""
    quotas = await _quotas(svc, p, workspace_id, Permission.READ)
    return await _out(quotas, workspace_id)


@router.put("/workspaces/{workspace_id}/quotas", tags=["workspaces"], responses=documented(503))
async def put_quotas(workspace_id: str, body: QuotasIn, p: Caller, svc: Svc) -> QuotasOut:
    """Replace the workspace's own limits (system admins). Every process applies them from
    its next start or model turn."""
    quotas = await _quotas(svc, p, workspace_id, Permission.SYSTEM)
    own = await quotas.store.limits(workspace_id) or QuotaLimits()
    target = Target("workspace", workspace_id, workspace_id)
    before, after = LimitsOut.of(own).model_dump(), body.model_dump()
    async with act(svc, p, "quota.set", target, before=before, after=after):
        await quotas.set_limits(workspace_id, body.limits())
    return await _out(quotas, workspace_id)


@router.get("/workspaces/{workspace_id}/usage", tags=["workspaces"], responses=documented(503))
async def get_usage(workspace_id: str, p: Caller, svc: Svc) -> UsageOut:
    """Instances running, starts this minute, tokens and cost today and this month, against
    the effective limits (its members)."""
    quotas = await _quotas(svc, p, workspace_id, Permission.READ)
    return UsageOut.of(workspace_id, await quotas.usage(workspace_id))
