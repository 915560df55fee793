"""The process's tool gateway, changeable while it runs: MCP servers of the stored runtime
configuration are added, replaced and removed (``config_apply.McpSlots``), and the live MCP
settings applied, without a restart.

Executors hold this object for the process's lifetime; it delegates to the current gateway:
``NoServers`` until a server exists (the mcp SDK is imported only then), the pooled
``ResilientGateway`` after. With ``mcp_proxy_url`` set the proxy holds the sessions and this
process has no slots: the proxy process applies the stored servers (``bootstrap.mcp_proxy``).

Which stored servers are held now is kept in ``scopes`` (``application.mcp_scopes``) as they
are put and removed, so routing a workspace's call is a lookup, not a walk over the servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cadenza.application.config_model import McpSpec
from cadenza.application.mcp_scopes import MCP_SCOPE_MARK, ScopedServers, WorkspaceTools
from cadenza.application.ports_ai import (
    ServerInfo,
    ToolGateway,
    ToolInfo,
    ToolPins,
    ToolResult,
)
from cadenza.application.ports_approvals import ToolApprovals
from cadenza.bootstrap.ai import ConfigError, NoServers, mcp_server, policy_gateway
from cadenza.domain.json import JSONObject
from cadenza.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from cadenza.infrastructure.mcp import HttpServer, StdioServer
    from cadenza.infrastructure.mcp.resilient import ResilientGateway


class LiveGateway:
    """``ToolGateway`` and ``ToolPins`` over the current gateway; ``McpSlots`` for changes."""

    def __init__(
        self,
        current: ToolGateway,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        approvals: ToolApprovals | None = None,
        url_refusal: Callable[[str], str | None] | None = None,
    ) -> None:
        """``url_refusal``: the URL policy for stored servers, judged again before each is
        added (``bootstrap.config.UrlPolicy.written``)."""
        self.current = current
        self._url_refusal = url_refusal
        self._settings = settings
        self._registry = registry
        self._approvals = approvals
        self._values: dict[str, object] = {}  # the live MCP settings last applied
        self.scopes = ScopedServers()  # the stored servers held now (kept by put and remove)

    @staticmethod
    def server(key: str, spec: McpSpec) -> StdioServer | HttpServer:
        """The gateway's configuration of a stored server, held under ``key``."""
        return mcp_server(key, spec.command, spec.args, spec.env, spec.url, spec.headers)

    def _pooled(self) -> ResilientGateway:
        from cadenza.infrastructure.mcp.resilient import ResilientGateway

        if not isinstance(self.current, ResilientGateway):
            self.current = policy_gateway(self._settings, self._registry, self._approvals)
            self.reconfigure(self._values)
        return self.current

    # ---- McpSlots ------------------------------------------------------------------------

    async def put(self, key: str, spec: McpSpec) -> None:
        if spec.url and self._url_refusal is not None:
            reason = self._url_refusal(spec.url)
            if reason is not None:
                raise ConfigError(f"MCP server {spec.name!r}: URL refused: {reason}")
        await self._pooled().put_server(self.server(key, spec))
        self.scopes.add(key)

    async def remove(self, key: str) -> None:
        self.scopes.discard(key)  # no new call is routed to it
        if isinstance(self.current, NoServers):
            return
        from cadenza.infrastructure.mcp.resilient import ResilientGateway

        if isinstance(self.current, ResilientGateway):
            await self.current.remove_server(key)

    def reconfigure(self, values: dict[str, object]) -> None:
        self._values = dict(values)
        if isinstance(self.current, NoServers):
            return  # applied when the first server is added (the mcp SDK is not loaded yet)
        from cadenza.infrastructure.mcp.resilient import McpClientPolicy, ResilientGateway

        if not isinstance(self.current, ResilientGateway):
            return
        old = self.current.policy
        failures = values.get("mcp_breaker_failures", old.breaker_failures)
        reset_s = values.get("mcp_breaker_reset_s", old.breaker_reset_s)
        timeout_s = values.get("mcp_call_timeout_s", old.call_timeout_s)
        self.current.reconfigure(
            McpClientPolicy(
                breaker_failures=int(failures) if isinstance(failures, int | float) else 5,
                breaker_reset_s=float(reset_s) if isinstance(reset_s, int | float) else 30.0,
                call_timeout_s=float(timeout_s) if isinstance(timeout_s, int | float) else 30.0,
            )
        )

    # ---- ToolGateway -----------------------------------------------------------------------

    async def list_tools(self, server: str) -> list[ToolInfo]:
        return await self.current.list_tools(server)

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        return await self.current.call_tool(
            server, name, arguments, idempotency_key=idempotency_key, timeout_s=timeout_s
        )

    async def ping(self, server: str) -> None:
        await self.current.ping(server)

    async def aclose(self) -> None:
        await self.current.aclose()

    def for_workspace(self, workspace_id: str) -> WorkspaceTools:
        return WorkspaceTools(self, self.scopes, workspace_id, self.held)

    def held(self) -> list[ServerInfo]:
        """Every server held now, under the gateway's names (name#workspace included)."""
        return self.current.servers() if isinstance(self.current, ToolPins) else []

    # ---- ToolPins ------------------------------------------------------------------------

    def servers(self) -> list[ServerInfo]:
        """The environment's and the shared servers: a workspace's own are not listed to
        every workspace (their names are held as name#workspace; ``for_workspace`` lists
        them to theirs)."""
        return [s for s in self.held() if MCP_SCOPE_MARK not in s.name]

    def pinned_hash(self, server: str, tool: str) -> str | None:
        return (
            self.current.pinned_hash(server, tool) if isinstance(self.current, ToolPins) else None
        )

    async def approve(self, server: str, tool: str, approved_by: str = "") -> None:
        if isinstance(self.current, ToolPins):
            await self.current.approve(server, tool, approved_by)
