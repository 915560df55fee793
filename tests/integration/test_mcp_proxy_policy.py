"""The client policy of the MCP proxy (``ResilientGateway``) with an injected clock.

The upstream is the in-repo MCP test server over stdio: a call that crashes it is a failed
attempt (the gateway restarts it for the next one). Time only moves when the test says so.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.mcp_proxy_harness import SERVER_SCRIPT, calls

from cadenza.application.ports_ai import ToolError
from cadenza.infrastructure.mcp import McpGateway, StdioServer
from cadenza.infrastructure.mcp.resilient import McpClientPolicy, ResilientGateway
from cadenza.infrastructure.resilience import Breaker, BreakerState

FAILURES = 2
RESET_S = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def gateway(tmp_path: Path, clock: FakeClock) -> AsyncIterator[ResilientGateway]:
    server = StdioServer(
        "up",
        sys.executable,
        (str(SERVER_SCRIPT), "--transport", "stdio"),
        {"MCP_TEST_LOG": str(tmp_path / "calls.jsonl")},
    )
    policy = McpClientPolicy(breaker_failures=FAILURES, breaker_reset_s=RESET_S)
    resilient = ResilientGateway(McpGateway([server], connect_timeout_s=30), policy, clock=clock)
    yield resilient
    await resilient.aclose()


def _state(breaker: Breaker) -> BreakerState:
    """Read afresh each time (mypy would narrow ``breaker.state`` across calls)."""
    return breaker.state


def _sample(gateway: ResilientGateway, name: str, **labels: str) -> float | None:
    return gateway.metrics.registry.get_sample_value(name, labels)


async def _crash(gateway: ResilientGateway, key: str) -> ToolError:
    with pytest.raises(ToolError) as failed:
        await gateway.call_tool(
            "up", "delete_item", {"item_id": key, "crash": True}, idempotency_key=key
        )
    return failed.value


async def test_breaker_opens_after_the_configured_failures_and_half_opens(
    gateway: ResilientGateway, clock: FakeClock, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    breaker = gateway.breakers["up"]
    await gateway.list_tools("up")
    with pytest.raises(ToolError):  # the server answered: it is alive, nothing counts
        await gateway.call_tool("up", "nope", {}, idempotency_key="n-1")
    await _crash(gateway, "d-1")
    assert _state(breaker) is BreakerState.CLOSED
    await _crash(gateway, "d-2")
    assert _state(breaker) is BreakerState.OPEN
    refused = await _crash(gateway, "d-3")
    assert refused.retryable  # nothing was sent
    assert "circuit" in str(refused)
    with pytest.raises(ToolError, match="circuit open"):
        await gateway.list_tools("up")
    assert [c["item_id"] for c in calls(log)] == ["d-1", "d-2"]  # d-3 never reached it
    assert gateway.readiness("up") == f"circuit open, next trial in {RESET_S:.1f} s"

    clock.now += RESET_S - 0.001
    await _crash(gateway, "d-4")
    assert len(calls(log)) == 2  # still open

    clock.now += 0.001  # cool-down over: one trial call goes through
    answer = await gateway.call_tool("up", "echo", {"text": "back"}, idempotency_key="e-1")
    assert answer.content == "back"
    assert _state(breaker) is BreakerState.CLOSED
    assert _sample(gateway, "cadenza_mcp_breaker_state", server="up") == 0.0
    for state in ("open", "half_open", "closed"):
        labels = {"server": "up", "to": state}
        assert _sample(gateway, "cadenza_mcp_breaker_transitions_total", **labels) == 1.0
    assert _sample(gateway, "cadenza_mcp_calls_total", server="up", tool="delete_item",
                   outcome="circuit_open") == 2.0  # fmt: skip
    assert _sample(gateway, "cadenza_mcp_calls_total", server="up", tool="unknown",
                   outcome="failed") == 1.0  # fmt: skip


async def test_failed_trial_reopens_the_circuit(
    gateway: ResilientGateway, clock: FakeClock, tmp_path: Path
) -> None:
    breaker = gateway.breakers["up"]
    await gateway.list_tools("up")
    for key in ("d-1", "d-2"):
        await _crash(gateway, key)
    clock.now += RESET_S
    trial = await _crash(gateway, "d-3")
    assert "circuit" not in str(trial)  # it reached the server, and failed
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.open_for() == RESET_S  # a full cool-down from the failed trial
    assert [c["item_id"] for c in calls(tmp_path / "calls.jsonl")] == ["d-1", "d-2", "d-3"]
