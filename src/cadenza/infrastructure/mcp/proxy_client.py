"""``ProxyToolGateway``: the ``ToolGateway`` port over the MCP proxy (``cadenza mcp-proxy``).

A worker configured with ``mcp_proxy_url`` holds one MCP session (streamable HTTP, the SDK
client, ``Authorization: Bearer <mcp_proxy_token>``) to the proxy instead of one per server.
Tool definitions come back whole (schema, annotations, hash) so approval rules and retry
classification still apply here; errors map to the same ``ToolError``s as in-process:

- the proxy answered with its error data: its ``retryable`` verdict, as the gateway there
  judged it (after its own retries);
- the proxy could not be reached before the request went out: retryable (nothing ran);
- the proxy went away or timed out during a call: retryable only if the tool's annotations
  allow a blind retry, exactly as a lost upstream session in-process.

A node's requests name its workspace (``for_workspace``): the proxy holds the stored MCP
servers too, and reaches the workspace's own server of that name first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from cadenza.application.ports_ai import ToolError, ToolInfo, ToolResult
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.mcp import proxy_protocol as wire
from cadenza.infrastructure.mcp.calls import TRANSPORT_ERRORS, ToolUnavailable
from cadenza.infrastructure.mcp.catalog import tool_info, tool_result
from cadenza.infrastructure.mcp.config import HttpServer
from cadenza.infrastructure.mcp.connection import Connection
from cadenza.infrastructure.mcp.policy import retry_allowed
from cadenza.infrastructure.mcp.resilient import RETRY_ATTEMPTS, RETRY_MAX_S
from cadenza.infrastructure.observability.tracing import client_span, trace_meta

log = logging.getLogger(__name__)

# Besides the call itself, an attempt in the proxy may spend up to its connect timeout (10 s)
# on each of: connecting, listing the catalog, pinging before a call that cannot be retried.
_ATTEMPT_OVERHEAD_S = 30.0


def answer_budget_s(timeout_s: float) -> float:
    """The longest a proxied call may take there: every attempt, and the backoffs between."""
    backoffs = (RETRY_ATTEMPTS - 1) * RETRY_MAX_S
    return RETRY_ATTEMPTS * (timeout_s + _ATTEMPT_OVERHEAD_S) + backoffs


class ProxyToolGateway:
    """Implements ``ToolGateway`` by calling the MCP proxy."""

    def __init__(self, url: str, token: str, *, connect_timeout_s: float = 10.0) -> None:
        config = HttpServer("mcp-proxy", url, {"Authorization": f"Bearer {token}"})
        # Stateless proxy: it sends no tools/list_changed; its own catalogs are kept current.
        self._connection = Connection(config, lambda: None, on_response=self._seen)
        self._refused = False  # the proxy answered 401: our token is wrong
        self._lock = asyncio.Lock()
        self._connect_timeout_s = connect_timeout_s
        # last listing, to classify failures: by (workspace, server, tool)
        self._known: dict[tuple[str | None, str, str], ToolInfo] = {}
        self._closed = False

    async def _session(self) -> ClientSession:
        async with self._lock:
            if self._closed:
                raise ToolError("the MCP gateway is closed", retryable=False)
            self._refused = False
            try:
                return await self._connection.session(self._connect_timeout_s)
            except Exception as exc:
                if self._refused:  # a configuration error: trying again cannot help
                    raise ToolError(
                        "the MCP proxy refused our service token (401): check mcp_proxy_token",
                        retryable=False,
                    ) from exc
                # nothing was sent: trying again is safe
                raise ToolUnavailable(f"MCP proxy unavailable: {exc!r}", retryable=True) from exc

    async def _seen(self, response: httpx2.Response) -> None:
        if response.status_code == 401:
            self._refused = True

    async def _drop(self, session: ClientSession) -> None:
        async with self._lock:
            if self._connection.current in (session, None):
                await self._connection.close()

    def _answered(self, exc: MCPError, what: str, *, unknown_outcome: bool) -> ToolError:
        """The ToolError for an MCP error: the proxy's verdict when it gave one."""
        verdict = wire.read_error_data(exc.data)
        if verdict is not None:
            retryable, unavailable = verdict
            kind = ToolUnavailable if unavailable else ToolError
            return kind(f"{what}: {exc.message}", retryable=retryable)
        if exc.code in (types.REQUEST_TIMEOUT, types.CONNECTION_CLOSED):
            return ToolUnavailable(f"{what}: {exc.message}", retryable=unknown_outcome)
        return ToolError(f"{what}: {exc.message}", retryable=False)

    def for_workspace(self, workspace_id: str) -> ProxyWorkspaceTools:
        """The gateway as a node of ``workspace_id`` sees it: the proxy routes each request
        to that workspace's own stored server first (``config_apply.ScopedTools``)."""
        return ProxyWorkspaceTools(self, workspace_id)

    @staticmethod
    def _meta(server: str, workspace_id: str | None) -> dict[str, object]:
        meta: dict[str, object] = {wire.SERVER_META: server}
        if workspace_id is not None:
            meta[wire.WORKSPACE_META] = workspace_id
        return meta

    async def list_tools(self, server: str, workspace_id: str | None = None) -> list[ToolInfo]:
        """The server's tools as the proxy lists them (from its cache). Raises ToolError."""
        session = await self._session()
        meta = cast(types.RequestParamsMeta, self._meta(server, workspace_id))
        try:
            async with asyncio.timeout(self._connect_timeout_s + _ATTEMPT_OVERHEAD_S):
                page = await session.list_tools(params=types.PaginatedRequestParams(_meta=meta))
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                await self._drop(session)
            raise self._answered(
                exc, f"tools of MCP server {server}", unknown_outcome=True
            ) from exc
        except (TimeoutError, *TRANSPORT_ERRORS) as exc:
            await self._drop(session)
            raise ToolUnavailable(
                f"MCP proxy failed listing {server}: {exc!r}", retryable=True
            ) from exc
        infos: list[ToolInfo] = []
        for tool in page.tools:
            found = wire.original(tool)
            if found is not None and found[0] == server:
                infos.append(tool_info(server, found[1]))
        for info in infos:
            self._known[(workspace_id, server, info.name)] = info
        return infos

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
        workspace_id: str | None = None,
    ) -> ToolResult:
        """One call through the proxy; ``timeout_s`` bounds each attempt there."""
        info = self._known.get((workspace_id, server, name))
        unknown_outcome = info is not None and retry_allowed(info)
        session = await self._session()
        budget = answer_budget_s(timeout_s)
        where = f"MCP tool {server}/{name}"
        try:
            async with asyncio.timeout(budget):
                with client_span(
                    "mcp.call_tool", {"cadenza.mcp_server": server, "cadenza.tool": name}
                ):
                    # the proxy continues this span's trace from _meta
                    meta = {
                        **self._meta(server, workspace_id),
                        wire.IDEMPOTENCY_META: idempotency_key,
                        wire.TIMEOUT_META: timeout_s,
                        **trace_meta(),
                    }
                    result = await session.call_tool(
                        wire.proxied_name(server, name),
                        dict(arguments),
                        read_timeout_seconds=budget,
                        meta=cast(types.RequestParamsMeta, meta),
                    )
        except TimeoutError as exc:
            raise ToolUnavailable(
                f"{where}: no answer from the MCP proxy in {budget:g} s",
                retryable=unknown_outcome,
            ) from exc
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED or not self._connection.alive:
                await self._drop(session)
            raise self._answered(exc, where, unknown_outcome=unknown_outcome) from exc
        except TRANSPORT_ERRORS as exc:
            await self._drop(session)
            raise ToolUnavailable(
                f"{where}: the MCP proxy failed during the call: {exc!r}",
                retryable=unknown_outcome,
            ) from exc
        if not isinstance(result, types.CallToolResult):  # pragma: no cover - SDK guarantees it
            raise ToolError(f"{where}: unexpected result", retryable=False)
        return tool_result(result)

    async def ping(self, server: str, workspace_id: str | None = None) -> None:
        """The proxy pings ``server`` (a health check of an MCP agent). Raises ToolError."""
        session = await self._session()
        try:
            async with asyncio.timeout(self._connect_timeout_s + _ATTEMPT_OVERHEAD_S):
                await session.send_ping(
                    meta=cast(types.RequestParamsMeta, self._meta(server, workspace_id))
                )
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                await self._drop(session)
            raise self._answered(exc, f"ping of MCP server {server}", unknown_outcome=True) from exc
        except (TimeoutError, *TRANSPORT_ERRORS) as exc:
            await self._drop(session)
            raise ToolUnavailable(
                f"MCP proxy failed pinging {server}: {exc!r}", retryable=True
            ) from exc

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            await self._connection.close()


class ProxyWorkspaceTools:
    """``ProxyToolGateway`` for the nodes of one workspace: each request names it."""

    def __init__(self, proxy: ProxyToolGateway, workspace_id: str) -> None:
        self._proxy = proxy
        self._workspace_id = workspace_id

    async def list_tools(self, server: str) -> list[ToolInfo]:
        return await self._proxy.list_tools(server, self._workspace_id)

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        return await self._proxy.call_tool(
            server,
            name,
            arguments,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
            workspace_id=self._workspace_id,
        )

    async def ping(self, server: str) -> None:
        await self._proxy.ping(server, self._workspace_id)

    async def aclose(self) -> None:
        return None  # the process's gateway is closed by its owner
