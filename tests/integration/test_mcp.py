"""The MCP gateway against real servers: ``mcp-server-time`` and the in-repo test server.

The test server runs over stdio (a child of the gateway) and over streamable HTTP (a child of
the test). Every test ends by checking that no process the gateway started is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from tests.net import free_port, wait_listening

from cadenza.application.ports_ai import ToolError, ToolGateway
from cadenza.infrastructure.mcp import HttpServer, McpGateway, StdioServer, ToolPolicy

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py"
# Generous: a cold Python server takes about a second to import the SDK and answer.
CONNECT_TIMEOUT_S = 30.0


_TEST_SERVERS = {"redis-server", "postgres", "mariadbd"}  # session-wide servers other tests started
_TEST_HELPERS = ("tests.kafka_mock",)  # session-wide helper processes (the Kafka mock cluster)


def _children() -> set[int]:
    """Our child processes, not counting the session's database servers."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() in _TEST_SERVERS:
                continue
            if any(h in " ".join(child.cmdline()) for h in _TEST_HELPERS):
                continue
            found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """The test server's call log and its definition-flip marker."""
    return tmp_path / "calls.jsonl", tmp_path / "flip"


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail if the test leaves a child process behind (running or zombie)."""
    before = _children()
    yield
    leftover = _children() - before
    assert not leftover, f"leaked child processes: {leftover}"


@pytest.fixture
async def stdio_gateway(
    files: tuple[Path, Path], no_leaks: None, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[McpGateway]:
    log, flip = files
    # The log path travels as an "env:" reference, resolved when the session starts.
    monkeypatch.setenv("CADENZA_TEST_MCP_LOG", str(log))
    server = StdioServer(
        name="test",
        command=sys.executable,
        args=[str(SERVER_SCRIPT), "--transport", "stdio"],
        env={"MCP_TEST_LOG": "env:CADENZA_TEST_MCP_LOG", "MCP_TEST_FLIP": str(flip)},
    )
    gateway = McpGateway([server], connect_timeout_s=CONNECT_TIMEOUT_S)
    yield gateway
    await gateway.aclose()


@pytest.fixture
def http_url(files: tuple[Path, Path]) -> Iterator[str]:
    """The test server over streamable HTTP on a free loopback port, stopped afterwards."""
    log, flip = files
    port = free_port()
    env = dict(os.environ, MCP_TEST_LOG=str(log), MCP_TEST_FLIP=str(flip))
    cmd = [sys.executable, str(SERVER_SCRIPT), "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_listening(proc, port, CONNECT_TIMEOUT_S, "the MCP test server")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def http_gateway(http_url: str, no_leaks: None) -> AsyncIterator[McpGateway]:
    server = HttpServer(name="test", url=http_url, headers={"X-Client": "cadenza-tests"})
    gateway = McpGateway([server], connect_timeout_s=CONNECT_TIMEOUT_S)
    yield gateway
    await gateway.aclose()


@pytest.fixture(params=["stdio", "http"])
def gateway(request: pytest.FixtureRequest) -> McpGateway:
    """The same test server through either transport."""
    result: McpGateway = request.getfixturevalue(f"{request.param}_gateway")
    return result


async def test_mcp_server_time_over_stdio(no_leaks: None) -> None:
    script = Path(sys.executable).with_name("mcp-server-time")
    # Typed as the port: mypy checks that McpGateway implements ToolGateway.
    gateway: ToolGateway = McpGateway(
        [StdioServer(name="time", command=str(script))], connect_timeout_s=CONNECT_TIMEOUT_S
    )
    try:
        tools = {info.name: info for info in await gateway.list_tools("time")}
        assert {"get_current_time", "convert_time"} <= set(tools)
        assert len(tools["get_current_time"].definition_hash) == 64
        await gateway.ping("time")
        result = await gateway.call_tool(
            "time", "get_current_time", {"timezone": "UTC"}, idempotency_key="t-1"
        )
        assert not result.is_error
        assert "UTC" in json.dumps(result.content)
    finally:
        await gateway.aclose()


async def test_catalog_has_annotations_and_hashes(gateway: McpGateway) -> None:
    tools = {info.name: info for info in await gateway.list_tools("test")}
    assert tools["echo"].annotations == {"readOnlyHint": True}
    assert tools["delete_item"].annotations["destructiveHint"] is True
    assert len({info.definition_hash for info in tools.values()}) == len(tools)
    assert all(not pin.changed for pin in gateway.pins().values())
    # Cached: a second listing is the same objects, not another round trip.
    again = {info.name: info for info in await gateway.list_tools("test")}
    assert again["echo"] is tools["echo"]


async def test_echo_and_idempotency_key_in_meta(
    gateway: McpGateway, files: tuple[Path, Path]
) -> None:
    result = await gateway.call_tool("test", "echo", {"text": "hi"}, idempotency_key="k-0")
    assert result.content == "hi"
    assert not result.is_error
    await gateway.call_tool("test", "delete_item", {"item_id": "a1"}, idempotency_key="k-1")
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert records == [{"item_id": "a1", "idempotency_key": "k-1"}]


async def test_changed_definition_blocks_until_approved(gateway: McpGateway) -> None:
    first = {info.name: info for info in await gateway.list_tools("test")}["flaky_definition"]
    assert (
        await gateway.call_tool("test", "flaky_definition", {}, idempotency_key="f-0")
    ).content == "v1"
    await gateway.call_tool("test", "flip", {}, idempotency_key="f-1")
    # The server announces the change with tools/list_changed; the cached catalog goes stale.
    deadline = time.monotonic() + 10
    while True:
        current = {info.name: info for info in await gateway.list_tools("test")}["flaky_definition"]
        if current.definition_hash != first.definition_hash:
            break
        assert time.monotonic() < deadline, "tools/list_changed never invalidated the catalog"
        await asyncio.sleep(0.05)
    pin = gateway.pins()[("test", "flaky_definition")]
    assert pin.changed
    assert pin.pinned_hash == first.definition_hash
    with pytest.raises(ToolError, match="re-approve") as blocked:
        await gateway.call_tool("test", "flaky_definition", {}, idempotency_key="f-2")
    assert not blocked.value.retryable
    await gateway.approve("test", "flaky_definition")
    assert not gateway.pins()[("test", "flaky_definition")].changed
    assert (
        await gateway.call_tool("test", "flaky_definition", {}, idempotency_key="f-3")
    ).content == "v2"


async def test_on_demand_refresh_and_allow_policy(files: tuple[Path, Path], no_leaks: None) -> None:
    _, flip = files
    server = StdioServer(
        name="test",
        command=sys.executable,
        args=[str(SERVER_SCRIPT)],
        env={"MCP_TEST_FLIP": str(flip)},
    )
    gateway = McpGateway(
        [server], policy=ToolPolicy(on_change="allow"), connect_timeout_s=CONNECT_TIMEOUT_S
    )
    try:
        await gateway.list_tools("test")
        flip.touch()  # changed behind the gateway's back: no notification this time
        await gateway.refresh("test")
        assert gateway.pins()[("test", "flaky_definition")].changed
        result = await gateway.call_tool("test", "flaky_definition", {}, idempotency_key="a-1")
        assert result.content == "v2"  # flagged, but this policy does not block
    finally:
        await gateway.aclose()


async def test_hang_times_out(gateway: McpGateway) -> None:
    await gateway.list_tools("test")  # connect first: only the call is timed
    started = time.monotonic()
    with pytest.raises(ToolError, match="timed out") as hung:
        await gateway.call_tool("test", "hang", {}, idempotency_key="h-1", timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert hung.value.retryable  # read-only: retrying is harmless
    # The session survives a timed-out call.
    assert (
        await gateway.call_tool("test", "echo", {"text": "ok"}, idempotency_key="h-2")
    ).content == "ok"


async def test_crash_is_retryable_and_reconnects(stdio_gateway: McpGateway) -> None:
    gateway = stdio_gateway
    await gateway.call_tool("test", "echo", {"text": "up"}, idempotency_key="c-0")
    before = _children()
    assert len(before) == 1  # the server, started lazily on first use
    with pytest.raises(ToolError) as crashed:
        await gateway.call_tool("test", "crash", {}, idempotency_key="c-1", timeout_s=10)
    assert crashed.value.retryable
    assert not _children(), "the crashed server was not reaped"
    result = await gateway.call_tool("test", "echo", {"text": "again"}, idempotency_key="c-2")
    assert result.content == "again"
    assert _children().isdisjoint(before)  # a new process, the old one gone


async def test_destructive_crash_is_not_retryable(
    stdio_gateway: McpGateway, files: tuple[Path, Path]
) -> None:
    with pytest.raises(ToolError) as crashed:
        await stdio_gateway.call_tool(
            "test", "delete_item", {"item_id": "x", "crash": True}, idempotency_key="d-1"
        )
    # The side effect may have happened (it did: it is logged), so no blind retry.
    assert not crashed.value.retryable
    assert json.loads(files[0].read_text())["idempotency_key"] == "d-1"


async def test_errors_for_unknown_server_tool_and_closed_gateway(stdio_gateway: McpGateway) -> None:
    with pytest.raises(ToolError, match="unknown MCP server"):
        await stdio_gateway.list_tools("nope")
    with pytest.raises(ToolError, match="no tool") as missing:
        await stdio_gateway.call_tool("test", "nope", {}, idempotency_key="e-1")
    assert not missing.value.retryable
    await stdio_gateway.aclose()
    assert not _children()
    with pytest.raises(ToolError, match="closed"):
        await stdio_gateway.list_tools("test")


async def test_unset_env_ref_and_missing_command(no_leaks: None) -> None:
    gateway = McpGateway(
        [
            StdioServer(
                name="env", command=sys.executable, env={"X": "env:CADENZA_TEST_UNSET_VAR"}
            ),
            StdioServer(name="cmd", command="/nonexistent/mcp-server"),
        ],
        connect_timeout_s=5,
    )
    try:
        with pytest.raises(ToolError, match="CADENZA_TEST_UNSET_VAR") as unset:
            await gateway.list_tools("env")
        assert not unset.value.retryable
        with pytest.raises(ToolError, match="unavailable") as missing:
            await gateway.list_tools("cmd")
        assert missing.value.retryable
    finally:
        await gateway.aclose()


async def test_destructive_call_after_idle_death_reconnects_first(
    stdio_gateway: McpGateway, files: tuple[Path, Path]
) -> None:
    await stdio_gateway.call_tool("test", "echo", {"text": "up"}, idempotency_key="i-0")
    (pid,) = _children()
    psutil.Process(pid).kill()  # dies between calls, while the session is idle
    deadline = time.monotonic() + 10
    while pid in _children() and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    # A destructive call must not fail with an "unknown outcome": the gateway pings first,
    # finds the session dead, reconnects, and only then sends the call.
    result = await stdio_gateway.call_tool(
        "test", "delete_item", {"item_id": "z"}, idempotency_key="i-1"
    )
    assert result.content == "deleted z"
    assert pid not in _children()
