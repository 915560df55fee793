"""The MCP server at ``/mcp`` (streamable HTTP): published processes as tools, API auth.

Every HTTP request is authenticated exactly like an API route (``guard.credentials`` and
``guard.resolve``: ``Authorization: Bearer <access token or API key>``, optional
``X-Workspace``) before the MCP layer sees it; failures are answered here as problem+json
(401, 403 or 429). The principal rides in the ASGI scope to the tool handlers, which read it
from ``ctx.request``. The session manager is stateless, so every request is judged on its own
credentials and any API process of a deployment can serve any request.

``guard.check_coverage`` only looks at FastAPI routes; this endpoint is a plain Starlette
``Route`` whose endpoint carries ``authenticates = True`` (like the WebSocket routes), and
``GUARDED_PATHS`` lists its path for the auth matrix.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import mcp_types as types
from fastapi import FastAPI
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cadenza.application.identity import AuthError, Forbidden, Principal
from cadenza.interfaces.api import problems
from cadenza.interfaces.api.guard import credentials, resolve
from cadenza.interfaces.api.services import ApiServices
from cadenza.interfaces.mcp_tools import PublishedTools, idempotency_key

MCP_PATH = "/mcp"
GUARDED_PATHS: frozenset[tuple[str, str]] = frozenset(
    (method, MCP_PATH) for method in ("GET", "POST", "DELETE")
)
"""Non-FastAPI routes that authenticate every request: (method, path) for the auth matrix."""

_PRINCIPAL = "cadenza.principal"  # ASGI scope key: the caller, for the tool handlers
_INSTRUCTIONS = (
    "Each tool runs one published Cadenza process of your workspace: the arguments are the "
    "process inputs, the result is its outputs. Long runs answer with the instance id; follow "
    "it at /api/v1/processes/instances/{id}. Send '_meta': {'idempotency_key': ...} to make a "
    "call safe to repeat."
)


def _principal(ctx: ServerRequestContext[Any, Any]) -> Principal:
    request = ctx.request
    found = request.scope.get(_PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(found, Principal):  # only reachable if the endpoint below was bypassed
        raise MCPError(types.INVALID_REQUEST, "not authenticated")
    return found


def build_server(tools: PublishedTools) -> Server[Any]:
    """The low-level MCP server: ``tools/list`` and ``tools/call`` over ``tools``."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        try:
            return await tools.list(_principal(ctx))
        except Forbidden as exc:
            raise MCPError(types.INVALID_REQUEST, str(exc)) from exc

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        p = _principal(ctx)
        key = idempotency_key(ctx.meta)
        try:
            return await tools.call(p, params.name, dict(params.arguments or {}), key)
        except Forbidden as exc:
            raise MCPError(types.INVALID_REQUEST, str(exc)) from exc

    return Server(
        "cadenza",
        version="1",
        instructions=_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class McpEndpoint:
    """ASGI endpoint: authenticate, then hand the request to the running session manager."""

    authenticates = True  # read by guard-style coverage checks: no request passes unauthenticated

    def __init__(self, services: ApiServices, server: Server[Any], max_body_bytes: int) -> None:
        self._services = services
        self._server = server
        self._max_body = max_body_bytes
        self._manager: StreamableHTTPSessionManager | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        credential, workspace = credentials(Request(scope))
        try:
            scope[_PRINCIPAL] = await resolve(self._services, credential, workspace)
        except AuthError as exc:
            reply = problems.problem(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
        except Forbidden as exc:
            reply = problems.problem(403, str(exc))
        except problems.RateLimited as exc:
            wait = max(1, round(exc.retry_after_s + 0.5))
            reply = problems.problem(429, str(exc), headers={"Retry-After": str(wait)})
        else:
            if self._manager is None:
                reply = problems.problem(503, "the MCP server is not running")
            else:
                await self._manager.handle_request(scope, receive, send)
                return
        await reply(scope, receive, send)

    async def start(self) -> None:
        """Run a fresh session manager in its own task: its task group must be entered and
        left by one task, which the app's lifespan (shared with other hooks) cannot promise."""
        manager = StreamableHTTPSessionManager(
            self._server, stateless=True, max_request_body_size=self._max_body
        )
        ready, self._stop = asyncio.Event(), asyncio.Event()
        stop = self._stop

        async def run() -> None:
            async with manager.run():
                ready.set()
                await stop.wait()

        self._task = asyncio.create_task(run(), name="mcp-server")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._task.done():
            self._task.result()  # it failed to start: say why
        self._manager = manager

    async def stop(self) -> None:
        self._manager = None
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def mount_mcp(app: FastAPI) -> None:
    """Serve the MCP server at ``/mcp`` (an ``ApiServices.extra_mounts`` entry)."""
    services: ApiServices = app.state.services
    max_body: int = app.state.config.max_body_bytes
    endpoint = McpEndpoint(
        services, build_server(PublishedTools(services.processes, services.hub)), max_body
    )
    app.router.routes.append(Route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"]))
    services.on_startup.append(endpoint.start)
    services.on_shutdown.append(endpoint.stop)
