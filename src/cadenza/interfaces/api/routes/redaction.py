"""A workspace's PII redaction rules (its admins and system admins): one switch, the built-in
detectors, custom RE2 patterns. As for members, secrets and retention, a workspace id other
than the caller's current one is not found, unless the caller is a system admin.
docs/pii.md."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from cadenza.application.audit import Target
from cadenza.application.identity import Principal
from cadenza.application.pii_rules import KeyNeeded, Redaction, RulesView
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.pii import (
    BUILTIN,
    MAX_CUSTOM_RULES,
    MAX_NAME_CHARS,
    MAX_PATTERN_CHARS,
    MAX_REPLACEMENT_CHARS,
    CustomRule,
    RedactionRules,
    RulesInvalid,
)
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.schemas import Strict
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["redaction"])


class CustomRuleIO(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS, description="RE2 syntax")
    replacement: str = Field(
        default="",
        max_length=MAX_REPLACEMENT_CHARS,
        description="what replaces a match; empty: [name]",
    )


class RedactionIn(Strict):
    enabled: bool = Field(description="the one switch: nothing is redacted while false")
    detectors: list[str] = Field(
        default_factory=lambda: list(BUILTIN),
        max_length=len(BUILTIN),
        description=f"built-in detectors on: {', '.join(BUILTIN)} (default: all)",
    )
    custom: list[CustomRuleIO] = Field(default_factory=list, max_length=MAX_CUSTOM_RULES)

    def rules(self) -> RedactionRules:
        return RedactionRules(
            self.enabled,
            frozenset(self.detectors),
            tuple(CustomRule(c.name, c.pattern, c.replacement) for c in self.custom),
        )


class RedactionOut(BaseModel):
    workspace_id: str
    enabled: bool
    detectors: list[str]
    custom: list[CustomRuleIO]
    updated_at: float | None = None
    updated_by: str | None = Field(default=None, description="user:ID or key:ID")

    @classmethod
    def of(cls, v: RulesView) -> RedactionOut:
        return cls(
            workspace_id=v.workspace_id,
            enabled=v.rules.enabled,
            detectors=[d for d in BUILTIN if d in v.rules.detectors],
            custom=[
                CustomRuleIO(name=c.name, pattern=c.pattern, replacement=c.replacement)
                for c in v.rules.custom
            ],
            updated_at=v.updated_at,
            updated_by=v.updated_by,
        )


def _audited(v: RulesView) -> JSONObject:
    """What the audit log records of the rules (they hold no secret: patterns are config)."""
    detectors: list[JSON] = [*sorted(v.rules.detectors)]
    return {
        "enabled": v.rules.enabled,
        "detectors": detectors,
        "custom": [{"name": c.name, "pattern": c.pattern} for c in v.rules.custom],
    }


async def _workspace(svc: ApiServices, p: Principal, workspace_id: str) -> Redaction:
    """The service, once the caller acts in ``workspace_id`` (or is a system admin)."""
    if (workspace_id != p.workspace_id and not p.is_system_admin) or (
        await svc.identity.store.workspace(workspace_id) is None
    ):
        raise NotFound(f"no workspace {workspace_id!r}")
    if svc.redaction is None:
        raise HTTPException(503, "redaction is not available on this server")
    return svc.redaction


@router.get("/workspaces/{workspace_id}/redaction", responses=documented(503))
async def get_redaction(workspace_id: str, p: Caller, svc: Svc) -> RedactionOut:
    """The workspace's redaction rules (admins); off unless set."""
    redaction = await _workspace(svc, p, workspace_id)
    return RedactionOut.of(await redaction.view(p, workspace_id))


@router.put("/workspaces/{workspace_id}/redaction", responses=documented(409, 503))
async def put_redaction(workspace_id: str, body: RedactionIn, p: Caller, svc: Svc) -> RedactionOut:
    """Replace the workspace's rules (admins). 422: an unknown detector or a pattern RE2
    cannot run; 409: turning it on needs the secrets key (the originals are sealed)."""
    redaction = await _workspace(svc, p, workspace_id)
    try:
        rules = body.rules()
    except RulesInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    before = await redaction.view(p, workspace_id)
    after = RulesView(workspace_id, rules)
    target = Target("workspace", workspace_id, workspace_id)
    try:
        async with act(
            svc, p, "redaction.set", target, before=_audited(before), after=_audited(after)
        ):
            view = await redaction.set(p, workspace_id, rules)
    except RulesInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    except KeyNeeded as exc:
        raise HTTPException(409, str(exc)) from exc
    return RedactionOut.of(view)
