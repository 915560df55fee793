"""MCP tool approvals are stored: an approval made through one gateway (one API process) holds
for another gateway on the same database (a worker), and a process that first sees a tool
after it changed does not trust the change."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.integration.test_mcp import CONNECT_TIMEOUT_S, SERVER_SCRIPT

from cadenza.application.ports_ai import ToolError, ToolInfo
from cadenza.application.ports_approvals import FIRST_USE
from cadenza.infrastructure.mcp import McpGateway, StdioServer
from cadenza.infrastructure.mcp.pins import PinBook
from cadenza.infrastructure.sql.approvals import SqlToolApprovals
from cadenza.infrastructure.sql.database import create_engine, upgrade

FLAKY = "flaky_definition"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def gateway(engine: AsyncEngine, flip: Path) -> McpGateway:
    server = StdioServer(
        name="test",
        command=sys.executable,
        args=[str(SERVER_SCRIPT), "--transport", "stdio"],
        env={"MCP_TEST_FLIP": str(flip)},
    )
    return McpGateway(
        [server], connect_timeout_s=CONNECT_TIMEOUT_S, approvals=SqlToolApprovals(engine)
    )


async def call(g: McpGateway, key: str) -> object:
    return (await g.call_tool("test", FLAKY, {}, idempotency_key=key)).content


async def test_an_approval_through_one_gateway_holds_for_another(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    flip = tmp_path / "flip"
    api, worker = gateway(engine, flip), gateway(engine, flip)
    try:
        await api.list_tools("test")
        assert await call(worker, "w-1") == "v1"
        flip.touch()  # the server changes the tool (both sessions see it on refresh)
        await api.refresh("test")
        await worker.refresh("test")
        assert worker.pins()[("test", FLAKY)].changed
        with pytest.raises(ToolError, match="re-approve"):
            await call(worker, "w-2")
        await api.approve("test", FLAKY, "user:admin")
        assert await call(worker, "w-3") == "v2"  # approved on the other process
        assert not worker.pins()[("test", FLAKY)].changed
        stored = await SqlToolApprovals(engine).approvals("test")
        flaky = [(a.hash, a.approved_by) for a in stored if a.tool == FLAKY]
        assert [by for _, by in flaky] == [FIRST_USE, "user:admin"]
        assert flaky[1][0] == worker.pinned_hash("test", FLAKY)
    finally:
        await asyncio.gather(api.aclose(), worker.aclose())


def _tool(definition_hash: str) -> ToolInfo:
    return ToolInfo("s", "t", "", {}, definition_hash=definition_hash)


async def test_a_process_that_first_sees_a_changed_tool_keeps_the_approved_definition(
    engine: AsyncEngine,
) -> None:
    approvals = SqlToolApprovals(engine)
    first = PinBook(approvals=approvals)
    await first.record("s", [_tool("h1")])  # trusted on first use, for everyone
    later = PinBook(approvals=approvals)  # a process started after the tool changed
    await later.record("s", [_tool("h2")])
    assert later.pins()[("s", "t")].pinned_hash == "h1"
    assert later.changed("s", "t", "h2")
    assert not await later.approved_since("s", "t", "h2")
    await first.record("s", [_tool("h2")])
    await first.approve("s", "t", "user:admin")
    assert await later.approved_since("s", "t", "h2")
    assert not later.changed("s", "t", "h2")
