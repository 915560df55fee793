"""The ``tool`` node against a scripted gateway: which failures may be retried."""

from __future__ import annotations

import pytest

from cadenza.application.nodes.tool import ToolExecutor
from cadenza.application.ports_ai import ToolError, ToolInfo, ToolResult
from cadenza.application.ports_nodes import NodeCall, NodeFailure
from cadenza.domain.definition import Node
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.templating import JinjaTemplates


class CatalogDown:
    """A gateway whose catalog cannot be read (``listing``), and whose calls fail alike."""

    def __init__(self, listing: ToolError) -> None:
        self.listing = listing
        self.calls = 0

    async def list_tools(self, server: str) -> list[ToolInfo]:
        raise self.listing

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30,
    ) -> ToolResult:
        self.calls += 1
        raise self.listing

    async def ping(self, server: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _call() -> NodeCall:
    node = Node("rm", "tool", {"server": "kb", "tool": "delete_item", "arguments": {}})
    return NodeCall("i1", "t1", node, 1, "i1:rm:0:1", {"nodes": {}})


async def test_unreachable_catalog_is_a_retryable_failure_and_calls_nothing() -> None:
    gateway = CatalogDown(ToolError("MCP proxy unavailable", retryable=True))
    with pytest.raises(NodeFailure) as failed:
        await ToolExecutor(gateway, JinjaTemplates()).execute(_call())
    assert failed.value.retryable
    assert gateway.calls == 0


async def test_unknown_server_stays_a_final_failure() -> None:
    gateway = CatalogDown(ToolError("no MCP server named 'kb'", retryable=False))
    with pytest.raises(NodeFailure) as failed:
        await ToolExecutor(gateway, JinjaTemplates()).execute(_call())
    assert not failed.value.retryable
