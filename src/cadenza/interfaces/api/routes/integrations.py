"""MCP servers and their pinned tools; model providers and a "test connection" call.

Both come from the server's settings and the stored runtime configuration. Nothing here ever
shows a secret: providers are listed by kind and URL, MCP servers by name and transport. MCP
servers are those the caller's workspace can use (``application.mcp_scopes``).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from cadenza.application.audit import Target
from cadenza.application.config_apply import gateway_for
from cadenza.application.identity import Permission, Principal
from cadenza.application.mcp_scopes import ENVIRONMENT, ScopedInfo, WorkspaceTools
from cadenza.application.ports_ai import ToolError, ToolGateway, ToolInfo, ToolPins
from cadenza.application.ports_nodes import NodeFailure
from cadenza.application.providers import probe_models
from cadenza.domain.errors import NotFound
from cadenza.interfaces.api.auditing import act
from cadenza.interfaces.api.guard import Caller, Svc
from cadenza.interfaces.api.schemas_admin import (
    McpServerOut,
    McpToolOut,
    ProviderOut,
    ProviderTestOut,
)
from cadenza.interfaces.api.services import ApiServices

router = APIRouter(prefix="/api/v1", tags=["integrations"])
TEST_TIMEOUT_S = 20.0  # a test call must answer sooner than a browser gives up
_MAX_MODELS = 100


def _gateway(svc: ApiServices, p: Principal) -> ToolGateway:
    """The gateway as the caller's workspace sees it: its own stored servers under their
    names, then the shared and environment ones; never another workspace's."""
    return gateway_for(svc.gateway, p.workspace_id)


def _pins(gateway: ToolGateway, server: str) -> ToolPins:
    """The gateway's pins, or NotFound for a server that is not configured."""
    if not isinstance(gateway, ToolPins) or server not in {s.name for s in gateway.servers()}:
        raise NotFound(f"no MCP server named {server!r} is configured")
    return gateway


async def _tools(gateway: ToolGateway, server: str) -> list[ToolInfo]:
    try:
        return await gateway.list_tools(server)
    except ToolError as exc:
        raise HTTPException(503, f"MCP server {server!r} is unavailable: {exc}") from exc


def _tool_out(pins: ToolPins, info: ToolInfo) -> McpToolOut:
    pinned = pins.pinned_hash(info.server, info.name)
    changed = pinned is not None and pinned != info.definition_hash
    return McpToolOut(
        name=info.name,
        description=info.description,
        input_schema=info.input_schema,
        annotations=info.annotations,
        definition_hash=info.definition_hash,
        pinned_hash=pinned,
        changed=changed,
        needs_approval=changed,
    )


@router.get("/mcp-servers", tags=["mcp"])
async def list_mcp_servers(p: Caller, svc: Svc) -> list[McpServerOut]:
    """The MCP servers the caller's workspace can use (the environment's, the shared ones,
    its own stored ones) and whether each has a live session."""
    p.require(Permission.READ)
    gateway = _gateway(svc, p)
    if isinstance(gateway, WorkspaceTools):
        scoped = gateway.scoped_servers()
    elif isinstance(gateway, ToolPins):
        scoped = [ScopedInfo(s, ENVIRONMENT) for s in gateway.servers()]
    else:
        scoped = []
    return [
        McpServerOut(
            name=s.info.name, transport=s.info.transport, status=s.info.status, scope=s.scope
        )
        for s in scoped
    ]


@router.get("/mcp-servers/{name}/tools", tags=["mcp"])
async def list_mcp_tools(name: str, p: Caller, svc: Svc) -> list[McpToolOut]:
    """The server's tools with their annotations and pinned hashes. A tool whose definition
    changed since it was approved is flagged and refused until re-approved. 503 when the
    server cannot be reached."""
    p.require(Permission.READ)
    gateway = _gateway(svc, p)
    pins = _pins(gateway, name)
    return [_tool_out(pins, info) for info in await _tools(gateway, name)]


@router.post("/mcp-servers/{name}/tools/{tool}/approve", tags=["mcp"])
async def approve_mcp_tool(name: str, tool: str, p: Caller, svc: Svc) -> McpToolOut:
    """Accept the tool's current definition (system admins)."""
    p.require(Permission.SYSTEM)
    gateway = _gateway(svc, p)
    pins = _pins(gateway, name)
    info = next((t for t in await _tools(gateway, name) if t.name == tool), None)
    if info is None:
        raise NotFound(f"MCP server {name!r} has no tool {tool!r}")
    target = Target("mcp_tool", f"{name}/{tool}")
    async with act(svc, p, "mcp_tool.approve", target, after={"tool_digest": info.definition_hash}):
        await pins.approve(name, tool, p.subject)
    return _tool_out(pins, info)


@router.get("/providers", tags=["providers"])
async def list_providers(p: Caller, svc: Svc) -> list[ProviderOut]:
    """Configured model providers: kind, URL, default model, circuit breaker state."""
    p.require(Permission.READ)
    registry = svc.providers
    out = []
    for name in sorted(registry.providers):
        info = registry.info.get(name)
        model = registry.default_models.get(name)
        out.append(
            ProviderOut(
                name=name,
                kind=info.kind if info else "unknown",
                base_url=info.base_url if info else None,
                default=name == registry.default,
                models=[model] if model else [],
                breaker=info.breaker() if info and info.breaker else None,
            )
        )
    return out


@router.post("/providers/{name}/test", tags=["providers"])
async def test_provider(name: str, p: Caller, svc: Svc) -> ProviderTestOut:
    """List the provider's models through the same client tasks use (timeout, retries,
    breaker included): ``ok`` false with the reason when it fails."""
    p.require(Permission.AGENTS)
    try:  # the caller's workspace's own stored provider first, then shared, then environment
        provider, _ = svc.providers.resolve(name, None, p.workspace_id)
    except NodeFailure as exc:
        raise NotFound(f"no model provider named {name!r}") from exc
    found = await probe_models(provider, TEST_TIMEOUT_S, _MAX_MODELS)
    return ProviderTestOut(
        ok=found.ok, latency_ms=found.latency_ms, detail=found.detail, models=found.models
    )
