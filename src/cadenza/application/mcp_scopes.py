"""Which MCP server a node of one workspace reaches, and which servers it is shown.

A process's gateway holds the environment's servers and the stored ones under one name each:
a shared stored server under its name, a workspace's own as ``name#workspace``
(``mcp_key``). ``ScopedServers`` is the set of stored names the gateway holds now, kept by
the runtime configuration's applier as it adds and removes servers (``McpSlots``), so that
routing a call is a dictionary lookup rather than a walk over every server. Two processes
use it: one holding its own MCP sessions (``bootstrap.mcp_live.LiveGateway``) and the MCP
proxy, which routes the calls workers make for a workspace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from cadenza.application.config_model import SHARED
from cadenza.application.ports_ai import (
    ServerInfo,
    ToolError,
    ToolGateway,
    ToolInfo,
    ToolPins,
    ToolResult,
)
from cadenza.domain.json import JSONObject

MCP_SCOPE_MARK = "#"  # a workspace's server is held as "name#workspace"; names have no "#"
ENVIRONMENT, SHARED_SCOPE, WORKSPACE = "environment", "shared", "workspace"


def mcp_key(workspace_id: str, name: str) -> str:
    """The gateway's name of a stored server: its name when shared, else name#workspace."""
    return name if workspace_id == SHARED else f"{name}{MCP_SCOPE_MARK}{workspace_id}"


def unknown(server: str) -> ToolError:
    return ToolError(f"unknown MCP server {server!r}", retryable=False)


class ScopedServers:
    """The stored servers a gateway holds now: the shared ones' names, and each workspace's
    own by workspace."""

    def __init__(self) -> None:
        self._shared: set[str] = set()
        self._own: dict[str, set[str]] = {}  # workspace -> names of its own servers

    def add(self, key: str) -> None:
        name, mark, workspace_id = key.partition(MCP_SCOPE_MARK)
        if mark:
            self._own.setdefault(workspace_id, set()).add(name)
        else:
            self._shared.add(name)

    def discard(self, key: str) -> None:
        name, mark, workspace_id = key.partition(MCP_SCOPE_MARK)
        if not mark:
            self._shared.discard(name)
            return
        names = self._own.get(workspace_id)
        if names is not None:
            names.discard(name)
            if not names:
                del self._own[workspace_id]

    def route(self, workspace_id: str | None, server: str) -> str:
        """The gateway's name of ``server`` as ``workspace_id`` names it: its own stored
        server first, else the shared or environment one. A name holding the scope mark is
        refused, so no node reaches another workspace's server."""
        if MCP_SCOPE_MARK in server:
            raise unknown(server)
        if workspace_id is not None and server in self._own.get(workspace_id, ()):
            return mcp_key(workspace_id, server)
        return server

    def visible(self, workspace_id: str, held: Iterable[ServerInfo]) -> list[ScopedInfo]:
        """Of the gateway's servers ``held``, those ``workspace_id`` can use, under the names
        its nodes use: the environment's and shared ones it does not override, then its own."""
        own = self._own.get(workspace_id, set())
        common: list[ScopedInfo] = []
        mine: list[ScopedInfo] = []
        for info in held:
            name, mark, owner = info.name.partition(MCP_SCOPE_MARK)
            if mark and owner == workspace_id:
                mine.append(ScopedInfo(dataclasses.replace(info, name=name), WORKSPACE))
            elif not mark and name not in own:
                scope = SHARED_SCOPE if name in self._shared else ENVIRONMENT
                common.append(ScopedInfo(info, scope))
        return common + sorted(mine, key=lambda s: s.info.name)


@dataclasses.dataclass(frozen=True)
class ScopedInfo:
    info: ServerInfo
    scope: str  # environment | shared | workspace


class WorkspaceTools:
    """A gateway as a node (or an admin) of one workspace sees it: ``ToolGateway`` and
    ``ToolPins`` under the names that workspace uses."""

    def __init__(
        self,
        gateway: ToolGateway,
        scopes: ScopedServers,
        workspace_id: str,
        held: Callable[[], Iterable[ServerInfo]] = list,
    ) -> None:
        """``held``: every server the gateway holds, under the gateway's names."""
        self._gateway = gateway
        self._scopes = scopes
        self.workspace_id = workspace_id
        self._held = held

    def _route(self, server: str) -> str:
        return self._scopes.route(self.workspace_id, server)

    async def list_tools(self, server: str) -> list[ToolInfo]:
        tools = await self._gateway.list_tools(self._route(server))
        return [dataclasses.replace(t, server=server) for t in tools]  # the name nodes use

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        return await self._gateway.call_tool(
            self._route(server),
            name,
            arguments,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
        )

    async def ping(self, server: str) -> None:
        await self._gateway.ping(self._route(server))

    async def aclose(self) -> None:
        return None  # the process's gateway is closed by its owner

    # ---- ToolPins ------------------------------------------------------------------------

    def scoped_servers(self) -> list[ScopedInfo]:
        return self._scopes.visible(self.workspace_id, self._held())

    def servers(self) -> list[ServerInfo]:
        return [s.info for s in self.scoped_servers()]

    def pinned_hash(self, server: str, tool: str) -> str | None:
        if not isinstance(self._gateway, ToolPins):
            return None
        return self._gateway.pinned_hash(self._route(server), tool)

    async def approve(self, server: str, tool: str, approved_by: str = "") -> None:
        if isinstance(self._gateway, ToolPins):
            await self._gateway.approve(self._route(server), tool, approved_by)
