"""``cadenza mcp-proxy``: every configured MCP server's tools behind one MCP endpoint.

An MCP server (the SDK's low-level ``Server``, streamable HTTP, stateless: any request may
reach any proxy replica, and a restarted proxy serves its clients' next request without a new
handshake) at ``/mcp`` whose tools are those of the configured servers, named ``server.tool``
(``proxy_protocol``). Each call goes through ``ResilientGateway``: the pooled sessions, pinned
tool hashes, breaker, retries and metrics of this process. Its servers may change while it
serves (stored ones, added by ``bootstrap.mcp_proxy``); a request naming a workspace reaches
that workspace's own server first (``route``).

Every request must carry ``Authorization: Bearer <mcp_proxy_token>`` (``proxy_auth``),
except the probes ``/health`` and ``/health/readiness``; ``/metrics`` takes the
``metrics_token`` instead and is not served (404) when none is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cadenza.application.mcp_scopes import MCP_SCOPE_MARK, ScopedServers
from cadenza.application.ports_ai import ToolError
from cadenza.infrastructure.mcp import proxy_protocol as wire
from cadenza.infrastructure.mcp.calls import ToolUnavailable
from cadenza.infrastructure.mcp.proxy_auth import (
    ProxyConfig,
    RequireToken,
    bearer_matches,
    check_tokens,
    unauthorized,
)
from cadenza.infrastructure.mcp.resilient import ResilientGateway
from cadenza.infrastructure.observability.tracing import server_span

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
MAX_CALL_TIMEOUT_S = 3600.0  # the most a caller may ask for one attempt (_meta timeout)
# (workspace, server) -> the name the gateway holds it under; raises ToolError
ServerRoute = Callable[[str | None, str], str]
_ENVIRONMENT_ONLY: ServerRoute = ScopedServers().route  # no stored servers: names as given


def _failure(exc: ToolError) -> MCPError:
    data = wire.error_data(retryable=exc.retryable, unavailable=isinstance(exc, ToolUnavailable))
    return MCPError(wire.PROXY_ERROR, str(exc), data)


def _timeout(meta: Mapping[str, Any]) -> float | None:
    value = meta.get(wire.TIMEOUT_META)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return min(float(value), MAX_CALL_TIMEOUT_S)
    return None  # the policy's default (Settings.mcp_call_timeout_s)


def _workspace(meta: Mapping[str, Any]) -> str | None:
    found = meta.get(wire.WORKSPACE_META)
    return found if isinstance(found, str) and found else None


def build_server(gateway: ResilientGateway, route: ServerRoute = _ENVIRONMENT_ONLY) -> Server[Any]:
    """The MCP server: ``tools/list``, ``tools/call`` and ``ping`` over ``gateway``, whose
    servers may change while it serves (stored ones, added and removed by the applier);
    ``route`` names the server a workspace's request reaches (``ScopedServers.route``)."""

    async def one(server: str, held: str | None = None) -> list[types.Tool]:
        """``held``'s tools served as ``server``'s (the name the caller uses)."""
        found = await gateway.definitions(held or server)
        return [wire.proxied(server, tool) for tool in found]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        meta = dict(params.meta or {}) if params else {}
        wanted = meta.get(wire.SERVER_META)
        if isinstance(wanted, str):
            try:
                return types.ListToolsResult(
                    tools=await one(wanted, route(_workspace(meta), wanted))
                )
            except ToolError as exc:
                raise _failure(exc) from exc
        # every server but the workspaces' own (a plain client names no workspace)
        names = [s.name for s in gateway.servers() if MCP_SCOPE_MARK not in s.name]
        tools: list[types.Tool] = []
        for server, found in zip(
            names,
            await asyncio.gather(*(one(n) for n in names), return_exceptions=True),
            strict=True,
        ):
            if isinstance(found, ToolError):  # the others are still worth listing
                log.warning("MCP proxy: tools of %s left out: %s", server, found)
            elif isinstance(found, BaseException):
                raise found
            else:
                tools.extend(found)
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        meta: dict[str, Any] = dict(ctx.meta or {})
        parts = wire.split_name(params.name, meta.get(wire.SERVER_META))
        if parts is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"unknown tool {params.name!r}: proxied tools are named <server>.<tool>",
                wire.error_data(retryable=False, unavailable=False),
            )
        key = meta.get(wire.IDEMPOTENCY_META)
        if not isinstance(key, str) or not key:
            key = f"mcp-proxy:{uuid.uuid4().hex}"  # a plain client sent none
        span = {"cadenza.mcp_server": parts[0], "cadenza.tool": parts[1]}
        try:
            with server_span("mcp-proxy.call_tool", meta, span):
                return await gateway.call_tool_raw(
                    route(_workspace(meta), parts[0]),
                    parts[1],
                    dict(params.arguments or {}),
                    idempotency_key=key,
                    timeout_s=_timeout(meta),
                )
        except ToolError as exc:
            raise _failure(exc) from exc

    async def ping(
        ctx: ServerRequestContext[Any], params: types.RequestParams | None
    ) -> types.EmptyResult:
        meta = dict(params.meta or {}) if params else {}
        server = meta.get(wire.SERVER_META)
        if isinstance(server, str):
            try:
                await gateway.ping(route(_workspace(meta), server))
            except ToolError as exc:
                raise _failure(exc) from exc
        return types.EmptyResult()

    return Server(
        "cadenza-mcp-proxy",
        version="1",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_ping=ping,
    )


class _Catalogs:
    """The first listing of every server held at start-up (the environment's), for
    readiness. Stored servers added later are listed when first used."""

    def __init__(self, gateway: ResilientGateway) -> None:
        self._gateway = gateway
        self.errors: dict[str, str] = {}
        self._warmed = {s.name for s in gateway.servers()}

    async def warm_up(self) -> None:
        async def load(server: str) -> None:
            try:
                await self._gateway.definitions(server)
            except ToolError as exc:
                self.errors[server] = str(exc)

        await asyncio.gather(*(load(name) for name in self._warmed))

    def checks(self) -> dict[str, str]:
        """Per server ``"ok"``, why not, ``"loading"`` before the first listing of a server
        held at start-up ended, ``"idle"`` for a stored one not used yet. Workspaces' own
        servers are left out: the probe is public and their names hold workspace ids."""
        found: dict[str, str] = {}
        for info in self._gateway.servers():
            if MCP_SCOPE_MARK in info.name:
                continue
            state = self._gateway.readiness(info.name)
            error = self.errors.get(info.name)
            waiting = "loading" if info.name in self._warmed else "idle"
            found[info.name] = state or (f"unavailable: {error}" if error else waiting)
        return found


def build_app(
    gateway: ResilientGateway,
    config: ProxyConfig,
    route: ServerRoute = _ENVIRONMENT_ONLY,
    background: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The proxy's HTTP app: ``/mcp``, the probes and ``/metrics``; closes ``gateway``.
    ``background``: entered while the app serves (the stored configuration's applier)."""
    check_tokens(config)
    manager = StreamableHTTPSessionManager(
        build_server(gateway, route),
        stateless=True,
        # one JSON body per call instead of an SSE stream: the proxy sends nothing before its
        # answer (measured: ~1.6x the calls/s of SSE answers, bench/mcp_proxy.py)
        json_response=True,
        max_request_body_size=config.max_body_bytes,
    )
    catalogs = _Catalogs(gateway)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readiness(request: Request) -> Response:
        checks = catalogs.checks()
        ready = "loading" not in checks.values()
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def metrics(request: Request) -> Response:
        if not config.metrics_token:
            return Response("Not Found", status_code=404)
        if not bearer_matches(request.headers, config.metrics_token):
            return unauthorized()
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def mcp(scope: Scope, receive: Receive, send: Send) -> None:
        await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warm = asyncio.create_task(catalogs.warm_up(), name="mcp-proxy-warm-up")
        try:
            async with contextlib.AsyncExitStack() as stack:
                if background is not None:
                    await stack.enter_async_context(background())
                await stack.enter_async_context(manager.run())
                yield
        finally:
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
            await gateway.aclose()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route(MCP_PATH, _Endpoint(mcp), methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequireToken, token=config.token)
    return app


class _Endpoint:
    """A plain ASGI callable as a Starlette route endpoint (a class instance is taken as an
    ASGI app, a function as a request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
