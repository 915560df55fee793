"""``cadenza mcp-proxy`` as a real process, reached by the worker-side ``ProxyToolGateway``.

The upstream is the in-repo MCP test server: over stdio as the proxy's child (each crash
restarts it, so a retried call reaches a fresh server) or over HTTP. Upstream calls are
counted in its call log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from tests.integration.mcp_proxy_harness import (
    METRICS_TOKEN,
    TOKEN,
    ProxyProcess,
    calls,
    http_upstream,
    running_proxy,
    stdio_upstream,
)

from cadenza.application.ports_ai import ToolError, ToolGateway
from cadenza.infrastructure.mcp import HttpServer, McpGateway
from cadenza.infrastructure.mcp.proxy_client import ProxyToolGateway

pytestmark = pytest.mark.slow


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


@pytest.fixture
def proxy(tmp_path: Path, log: Path) -> Iterator[ProxyProcess]:
    """A proxy over a stdio upstream named ``up``, serving /metrics with METRICS_TOKEN."""
    upstream = stdio_upstream("up", log, tmp_path / "gate")
    with running_proxy([upstream], CADENZA_METRICS_TOKEN=METRICS_TOKEN) as running:
        yield running


@pytest.fixture
async def gateway(proxy: ProxyProcess) -> AsyncIterator[ProxyToolGateway]:
    client = ProxyToolGateway(proxy.url, TOKEN)
    yield client
    await client.aclose()


async def test_worker_gateway_sees_the_same_tools_and_calls_through_the_proxy(
    tmp_path: Path, log: Path
) -> None:
    with http_upstream(log, tmp_path / "gate") as url:
        direct = McpGateway([HttpServer("up", url)])
        with running_proxy([{"name": "up", "url": url}]) as proxy:
            # Typed as the port: mypy checks that ProxyToolGateway implements ToolGateway.
            via: ToolGateway = ProxyToolGateway(proxy.url, TOKEN)
            try:
                proxied = {t.name: t for t in await via.list_tools("up")}
                result = await via.call_tool("up", "echo", {"text": "hi"}, idempotency_key="e-1")
                deleted = await via.call_tool(
                    "up", "delete_item", {"item_id": "7"}, idempotency_key="d-7"
                )
                await via.ping("up")
            finally:
                await via.aclose()
        in_process = {t.name: t for t in await direct.list_tools("up")}
        await direct.aclose()
    assert proxied == in_process  # schema, annotations and definition hash, unchanged
    assert proxied["delete_item"].annotations == {"readOnlyHint": False, "destructiveHint": True}
    assert (result.content, result.is_error) == ("hi", False)
    assert deleted.content == "deleted 7"
    assert calls(log) == [{"item_id": "7", "idempotency_key": "d-7"}]


async def test_errors_map_to_the_in_process_failures(gateway: ProxyToolGateway) -> None:
    with pytest.raises(ToolError) as unknown_tool:
        await gateway.call_tool("up", "nope", {}, idempotency_key="n-1")
    assert not unknown_tool.value.retryable
    assert "has no tool 'nope'" in str(unknown_tool.value)
    with pytest.raises(ToolError) as unknown_server:
        await gateway.list_tools("elsewhere")
    assert not unknown_server.value.retryable


async def test_read_only_tool_is_retried_three_times_with_backoff(
    gateway: ProxyToolGateway, log: Path
) -> None:
    await gateway.list_tools("up")
    with pytest.raises(ToolError) as failed:
        await gateway.call_tool("up", "read_crash", {}, idempotency_key="r-1")
    assert failed.value.retryable  # read-only: the worker may try again later too
    attempts = calls(log, "read_crash")
    assert [a["idempotency_key"] for a in attempts] == ["r-1", "r-1", "r-1"]
    times = [float(str(a["t"])) for a in attempts]
    # backoff from 100 ms, doubling (plus jitter and the server's restart on top)
    assert times[1] - times[0] >= 0.1
    assert times[2] - times[1] >= 0.2


async def test_destructive_tool_is_not_retried(gateway: ProxyToolGateway, log: Path) -> None:
    await gateway.list_tools("up")
    with pytest.raises(ToolError) as failed:
        await gateway.call_tool(
            "up", "delete_item", {"item_id": "x", "crash": True}, idempotency_key="d-1"
        )
    assert not failed.value.retryable
    assert calls(log) == [{"item_id": "x", "idempotency_key": "d-1"}]


async def test_a_worker_with_a_wrong_token_fails_for_good(proxy: ProxyProcess) -> None:
    wrong = ProxyToolGateway(proxy.url, "w" * 40)
    try:
        with pytest.raises(ToolError) as refused:
            await wrong.list_tools("up")
    finally:
        await wrong.aclose()
    assert not refused.value.retryable
    assert "refused our service token (401)" in str(refused.value)


def _call_body() -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


def test_requests_without_the_service_token_are_refused(proxy: ProxyProcess) -> None:
    mcp_headers = {"Accept": "application/json, text/event-stream"}
    missing = httpx2.post(proxy.url, json=_call_body(), headers=mcp_headers)
    wrong = httpx2.post(
        proxy.url,
        json=_call_body(),
        headers={**mcp_headers, "Authorization": "Bearer " + "w" * 40},
    )
    other_path = httpx2.get(f"{proxy.base}/anything")
    assert (missing.status_code, wrong.status_code, other_path.status_code) == (401, 401, 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert httpx2.get(f"{proxy.base}/health").json() == {"status": "ok"}
    ready = httpx2.get(f"{proxy.base}/health/readiness")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "checks": {"up": "ok"}})


async def test_metrics_take_the_metrics_token(
    proxy: ProxyProcess, gateway: ProxyToolGateway
) -> None:
    await gateway.call_tool("up", "echo", {"text": "x"}, idempotency_key="m-1")
    url = f"{proxy.base}/metrics"
    assert httpx2.get(url).status_code == 401
    assert httpx2.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    scraped = httpx2.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    text = scraped.text
    assert 'cadenza_mcp_calls_total{outcome="ok",server="up",tool="echo"} 1.0' in text
    assert 'cadenza_mcp_call_duration_seconds_count{server="up",tool="echo"} 1.0' in text
    assert 'cadenza_mcp_breaker_state{server="up"} 0.0' in text


def test_metrics_are_not_served_without_a_metrics_token(tmp_path: Path, log: Path) -> None:
    with running_proxy([stdio_upstream("up", log, tmp_path / "gate")]) as proxy:
        answer = httpx2.get(f"{proxy.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 404


@pytest.mark.parametrize("token", ["", "too-short"])
def test_proxy_refuses_to_start_without_a_long_token(token: str) -> None:
    env = {"CADENZA_MCP_PROXY_TOKEN": token, "CADENZA_MCP_SERVERS": "[]"}
    done = subprocess.run(
        [sys.executable, "-m", "cadenza", "mcp-proxy", "--port", "0"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = " ".join(done.stderr.split())  # the console wraps long lines
    assert done.returncode == 2
    assert "error: mcp_proxy_token (CADENZA_MCP_PROXY_TOKEN) must be set to at least 32" in message
