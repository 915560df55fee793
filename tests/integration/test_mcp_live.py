"""The process's live MCP gateway: stored servers added, replaced and removed while it runs,
the live MCP settings applied to every circuit, a workspace's server reached only by that
workspace's nodes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cadenza.application.config_apply import gateway_for
from cadenza.application.config_model import McpSpec
from cadenza.application.ports_ai import ToolError
from cadenza.bootstrap.ai import NoServers
from cadenza.bootstrap.mcp_live import LiveGateway
from cadenza.settings import Settings

SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py")
SERVER = McpSpec("tools", command=sys.executable, args=(SCRIPT, "--transport", "stdio"))


async def test_servers_come_and_go_and_settings_apply_without_a_restart() -> None:
    live = LiveGateway(NoServers(), Settings())
    # settings applied before the first server exists are kept for it
    live.reconfigure({"mcp_breaker_failures": 2, "mcp_breaker_reset_s": 7.0})
    try:
        await live.put("tools", SERVER)
        assert [t.name for t in await live.list_tools("tools") if t.name == "echo"] == ["echo"]
        breaker = live.current.breakers["tools"]  # type: ignore[attr-defined]
        assert (breaker.threshold, breaker.reset_s) == (2, 7.0)
        live.reconfigure({"mcp_breaker_failures": 9, "mcp_call_timeout_s": 3.0})
        assert (breaker.threshold, live.current.policy.call_timeout_s) == (9, 3.0)  # type: ignore[attr-defined]
        await live.put("tools#ws-a", SERVER)  # a workspace's own, under its scoped name
        assert [s.name for s in live.servers()] == ["tools"]  # not listed to everyone
        mine = gateway_for(live, "ws-a")
        result = await mine.call_tool("tools", "echo", {"text": "hi"}, idempotency_key="k1")
        assert result.content == "hi"
        theirs = gateway_for(live, "ws-b")
        with pytest.raises(ToolError, match="unknown MCP server"):
            await theirs.list_tools("tools#ws-a")
        await live.remove("tools")
        with pytest.raises(ToolError, match="unknown MCP server"):
            await live.list_tools("tools")
        assert [t.server for t in await mine.list_tools("tools")][:1] == ["tools"]
    finally:
        await live.aclose()
