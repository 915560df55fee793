"""Which MCP server a workspace's node reaches and which servers its admins are shown
(``application.mcp_scopes``): its own stored server first, never another workspace's."""

from __future__ import annotations

import pytest

from cadenza.application.mcp_scopes import ScopedServers, WorkspaceTools, mcp_key
from cadenza.application.ports_ai import ServerInfo, ToolError, ToolInfo, ToolResult
from cadenza.domain.json import JSONObject


class Held:
    """A gateway holding servers under the gateway's names; it records what it was asked."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.asked: list[str] = []
        self.approved: list[tuple[str, str]] = []

    def servers(self) -> list[ServerInfo]:
        return [ServerInfo(n, "stdio", "idle") for n in self.names]

    async def list_tools(self, server: str) -> list[ToolInfo]:
        self.asked.append(server)
        return [ToolInfo(server, "echo", "", {}, {}, "h")]

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        self.asked.append(server)
        return ToolResult(server)

    async def ping(self, server: str) -> None:
        self.asked.append(server)

    async def aclose(self) -> None:
        return None

    def pinned_hash(self, server: str, tool: str) -> str | None:
        return f"pin-of-{server}"

    async def approve(self, server: str, tool: str, approved_by: str = "") -> None:
        self.approved.append((server, tool))


def scopes_of(*keys: str) -> ScopedServers:
    scopes = ScopedServers()
    for key in keys:
        scopes.add(key)
    return scopes


def test_a_workspace_reaches_its_own_server_first_and_never_another_workspaces() -> None:
    scopes = scopes_of("tools", mcp_key("ws-a", "tools"), mcp_key("ws-b", "mine"))
    assert scopes.route("ws-a", "tools") == "tools#ws-a"
    assert scopes.route("ws-c", "tools") == "tools"  # the shared one
    assert scopes.route("ws-a", "mine") == "mine"  # ws-b's is not ws-a's: not found as shared
    assert scopes.route(None, "tools") == "tools"
    for name in ("tools#ws-a", "mine#ws-b"):
        with pytest.raises(ToolError, match="unknown MCP server"):
            scopes.route("ws-a", name)
    scopes.discard(mcp_key("ws-a", "tools"))
    assert scopes.route("ws-a", "tools") == "tools"
    scopes.discard(mcp_key("ws-a", "never-added"))  # harmless


def test_the_servers_listed_are_those_the_workspace_can_use_under_its_names() -> None:
    held = Held(["env-one", "tools", "tools#ws-a", "other#ws-b", "zeta#ws-a"])
    scopes = scopes_of("tools", "tools#ws-a", "other#ws-b", "zeta#ws-a")
    listed = [(s.info.name, s.scope) for s in scopes.visible("ws-a", held.servers())]
    # its own "tools" overrides the shared one; ws-b's server is never shown
    assert listed == [("env-one", "environment"), ("tools", "workspace"), ("zeta", "workspace")]
    listed_b = [(s.info.name, s.scope) for s in scopes.visible("ws-b", held.servers())]
    assert listed_b == [("env-one", "environment"), ("tools", "shared"), ("other", "workspace")]


async def test_workspace_tools_route_calls_pins_and_approvals() -> None:
    held = Held(["tools", "tools#ws-a"])
    scopes = scopes_of("tools", "tools#ws-a")
    mine = WorkspaceTools(held, scopes, "ws-a", held.servers)
    theirs = WorkspaceTools(held, scopes, "ws-b", held.servers)
    tools = await mine.list_tools("tools")
    assert [t.server for t in tools] == ["tools"]  # the name its nodes use
    assert (await mine.call_tool("tools", "echo", {}, idempotency_key="k")).content == "tools#ws-a"
    assert (await theirs.call_tool("tools", "echo", {}, idempotency_key="k")).content == "tools"
    await theirs.ping("tools")
    assert held.asked == ["tools#ws-a", "tools#ws-a", "tools", "tools"]
    assert mine.pinned_hash("tools", "echo") == "pin-of-tools#ws-a"
    await mine.approve("tools", "echo", "admin")
    assert held.approved == [("tools#ws-a", "echo")]
    assert [s.name for s in theirs.servers()] == ["tools"]
