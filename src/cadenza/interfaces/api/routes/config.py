"""Runtime configuration: model providers, MCP servers and live settings, changed while the
server runs (docs/configuration.md, "Runtime configuration").

``scope=workspace`` (the default) acts on the caller's current workspace and needs its admin;
``scope=shared`` acts on what every workspace sees and needs a system admin, as do the live
settings. A save is validated first (a provider test call; an MCP handshake and tool list):
a failure is a 422 saying why; ``validate=false`` skips it, for system admins only. What the
environment or cadenza.toml defines is listed (``source: environment``) and read-only (409).
No route returns a credential: a provider shows ``has_api_key``, an MCP server the names of
its env and header values.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from cadenza.application.audit import Target
from cadenza.application.config_model import (
    MCP_SERVER,
    NAME_PATTERN,
    PROVIDER,
    SETTING,
    SHARED,
    ConfigInvalid,
    ConfigReadOnly,
    ConfigRow,
    McpSpec,
    ProviderSpec,
)
from cadenza.application.identity import Permission, Principal
from cadenza.application.runtime_config import ConfigView, RuntimeConfig
from cadenza.application.secrets import SecretsUnavailable
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSONObject
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.problems import documented
from cadenza.interfaces.api.schemas_config import (
    McpServerConfigIn,
    McpServerConfigOut,
    ProviderConfigIn,
    ProviderConfigOut,
    SettingIn,
    SettingOut,
)
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1/config", tags=["config"])
ScopeParam = Literal["workspace", "shared"]
ScopeQuery = Query(
    default="workspace", description="workspace: the caller's current one; shared: every one's"
)
ValidateQuery = Query(
    default=True, description="test the configuration before saving; false: system admins only"
)
_NAMED = "letters, digits, '_', '.', '-'; at most 64"
ProviderName = Path(alias="provider", pattern=NAME_PATTERN, description=_NAMED)
ServerName = Path(alias="server", pattern=NAME_PATTERN, description=_NAMED)
SettingName = Path(alias="setting", description="one of the live settings")
_ERRORS = documented(409, 422, 503)


def _config(svc: ApiServices) -> RuntimeConfig:
    if svc.config is None:
        raise HTTPException(503, "runtime configuration is not available on this server")
    return svc.config


def _scope(p: Principal, scope: ScopeParam, *, validate: bool = True) -> str:
    """The row scope the caller acts on, once allowed to."""
    if scope == "shared":
        p.require(Permission.SYSTEM)
        return SHARED
    p.require(Permission.MANAGE)
    if not validate:
        p.require(Permission.SYSTEM)
    return p.workspace_id


def _audit_target(kind: str, name: str, scope: str) -> Target:
    # shared rows belong to no workspace: the system admin's own workspace is not theirs
    return Target(f"config_{kind}", name, None if scope == SHARED else scope)


async def _save(
    svc: ApiServices, p: Principal, action: str, row: ConfigRow, before: JSONObject | None
) -> ConfigView:
    config = _config(svc)
    target = _audit_target(row.kind, row.name, row.workspace_id)
    after = dict(row.body)
    if row.kind == PROVIDER:  # as the routes show it: whether a key is set, never the key
        after["has_api_key"] = row.sealed is not None
    async with act(svc, p, action, target, before=before, after=after):
        return await config.save(row)


async def _before(config: RuntimeConfig, kind: str, scope: str, name: str) -> JSONObject | None:
    try:
        view = await config.get(kind, scope, name)
    except NotFound:
        return None
    return view.body if view.source == "database" else None


async def _prepared(make: Awaitable[ConfigRow]) -> ConfigRow:
    """Await a ``prepare_*`` call, as problems: invalid 422, read-only 409, no key 503."""
    try:
        return await make
    except ConfigInvalid as exc:
        raise HTTPException(422, str(exc)) from exc
    except ConfigReadOnly as exc:
        raise HTTPException(409, str(exc)) from exc
    except SecretsUnavailable as exc:
        raise HTTPException(503, f"credentials cannot be sealed: {exc}") from exc


async def _delete(svc: ApiServices, p: Principal, kind: str, scope: str, name: str) -> None:
    config = _config(svc)
    before = await _before(config, kind, scope, name)
    try:
        async with act(
            svc, p, f"config.{kind}.delete", _audit_target(kind, name, scope), before=before
        ):
            await config.delete(scope, kind, name)
    except ConfigReadOnly as exc:
        raise HTTPException(409, str(exc)) from exc


# ---- model providers ---------------------------------------------------------------------


@router.get("/providers")
async def list_provider_configs(p: Caller, svc: Svc) -> list[ProviderConfigOut]:
    """The providers the caller's workspace sees: the environment's, the shared ones, its own
    (workspace admins)."""
    p.require(Permission.MANAGE)
    views = await _config(svc).items(PROVIDER, p.workspace_id)
    return [ProviderConfigOut.of(v) for v in views]


@router.get("/providers/{provider}")
async def get_provider_config(
    p: Caller, svc: Svc, name: str = ProviderName, scope: ScopeParam = ScopeQuery
) -> ProviderConfigOut:
    return ProviderConfigOut.of(await _config(svc).get(PROVIDER, _scope(p, scope), name))


@router.put("/providers/{provider}", responses=_ERRORS)
async def put_provider_config(
    body: ProviderConfigIn,
    p: Caller,
    svc: Svc,
    name: str = ProviderName,
    scope: ScopeParam = ScopeQuery,
    validate: bool = ValidateQuery,
) -> ProviderConfigOut:
    """Create or replace a provider after a test call (its models listed) with this very
    configuration; every process uses it from its next reload, without a restart."""
    where = _scope(p, scope, validate=validate)
    config = _config(svc)
    spec = ProviderSpec(
        name,
        body.kind,
        body.base_url,
        body.default_model,
        body.pool_size,
        {m: (v.prompt, v.completion) for m, v in body.prices.items()},
        body.api_key,
    )
    row = await _prepared(config.prepare_provider(where, spec, p.subject, validate=validate))
    before = await _before(config, PROVIDER, where, name)
    return ProviderConfigOut.of(await _save(svc, p, "config.provider.put", row, before))


@router.delete(
    "/providers/{provider}", status_code=status.HTTP_204_NO_CONTENT, responses=documented(409)
)
async def delete_provider_config(
    p: Caller, svc: Svc, name: str = ProviderName, scope: ScopeParam = ScopeQuery
) -> Response:
    """Remove a stored provider; nodes naming it fail from every process's next reload."""
    await _delete(svc, p, PROVIDER, _scope(p, scope), name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- MCP servers -------------------------------------------------------------------------


@router.get("/mcp-servers")
async def list_mcp_server_configs(p: Caller, svc: Svc) -> list[McpServerConfigOut]:
    """The MCP servers the caller's workspace sees (workspace admins)."""
    p.require(Permission.MANAGE)
    views = await _config(svc).items(MCP_SERVER, p.workspace_id)
    return [McpServerConfigOut.of(v) for v in views]


@router.get("/mcp-servers/{server}")
async def get_mcp_server_config(
    p: Caller, svc: Svc, name: str = ServerName, scope: ScopeParam = ScopeQuery
) -> McpServerConfigOut:
    return McpServerConfigOut.of(await _config(svc).get(MCP_SERVER, _scope(p, scope), name))


@router.put("/mcp-servers/{server}", responses=_ERRORS)
async def put_mcp_server_config(
    body: McpServerConfigIn,
    p: Caller,
    svc: Svc,
    name: str = ServerName,
    scope: ScopeParam = ScopeQuery,
    validate: bool = ValidateQuery,
) -> McpServerConfigOut:
    """Create or replace an MCP server after a handshake and tool list with this very
    configuration. A stdio ``command`` runs on the server's hosts: system admins only."""
    where = _scope(p, scope, validate=validate)
    if body.command:
        p.require(Permission.SYSTEM)
    config = _config(svc)
    spec = McpSpec(
        name, body.command, tuple(body.args), body.env or {}, body.url, body.headers or {}
    )
    row = await _prepared(
        config.prepare_mcp(
            where,
            spec,
            p.subject,
            keep_env=body.env is None,
            keep_headers=body.headers is None,
            validate=validate,
        )
    )
    before = await _before(config, MCP_SERVER, where, name)
    return McpServerConfigOut.of(await _save(svc, p, "config.mcp_server.put", row, before))


@router.delete(
    "/mcp-servers/{server}", status_code=status.HTTP_204_NO_CONTENT, responses=documented(409)
)
async def delete_mcp_server_config(
    p: Caller, svc: Svc, name: str = ServerName, scope: ScopeParam = ScopeQuery
) -> Response:
    """Remove a stored MCP server; every process closes its session on its next reload."""
    await _delete(svc, p, MCP_SERVER, _scope(p, scope), name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- live settings -----------------------------------------------------------------------


@router.get("/settings")
async def list_live_settings(p: Caller, svc: Svc) -> list[SettingOut]:
    """The settings that can change while the server runs, their values and sources."""
    p.require(Permission.SYSTEM)
    return [SettingOut.of(v) for v in await _config(svc).settings()]


@router.put("/settings/{setting}", responses=_ERRORS)
async def put_live_setting(
    body: SettingIn, p: Caller, svc: Svc, name: str = SettingName
) -> SettingOut:
    """Change a live setting for every process (system admins); 409 when the environment or
    cadenza.toml sets it."""
    p.require(Permission.SYSTEM)
    config = _config(svc)
    row = await _prepared(config.prepare_setting(name, body.value, p.subject))
    before = await _before(config, SETTING, SHARED, name)
    return SettingOut.of(await _save(svc, p, "config.setting.put", row, before))


@router.delete("/settings/{setting}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_live_setting(p: Caller, svc: Svc, name: str = SettingName) -> Response:
    """Return a live setting to its environment value or default (system admins)."""
    p.require(Permission.SYSTEM)
    await _delete(svc, p, SETTING, SHARED, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
