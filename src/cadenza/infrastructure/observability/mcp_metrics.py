"""Prometheus metrics of MCP tool calls made under the client policy (the MCP proxy).

On a registry of their own: the ``cadenza mcp-proxy`` process serves exactly these at
``/metrics``. The ``tool`` label takes only names found in the server's catalog (anything
else is ``"unknown"``), so a caller cannot grow the label set at will. See
docs/_parts/mcp-proxy.md for the names and what each outcome means.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger(__name__)

UNKNOWN_TOOL = "unknown"
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
# A workspace's own server (runtime configuration) is held as "name#workspace": /metrics is
# read across workspaces, so its calls are counted under this label with no tool name, and
# its circuit is not a series of its own.
WORKSPACE_SERVER = "workspace"


def _label(server: str, tool: str) -> tuple[str, str]:
    return (WORKSPACE_SERVER, WORKSPACE_SERVER) if "#" in server else (server, tool)


class McpMetrics:
    """Calls by outcome, failed attempts by reason, call latency and each server's circuit."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "cadenza_mcp_calls_total",
            "MCP tool calls by server, tool and outcome (ok, tool_error, failed, unavailable, "
            "circuit_open), each counted once whatever its retries",
            ["server", "tool", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "cadenza_mcp_errors_total",
            "Failed MCP tool call attempts (retried ones included) by server, tool and reason "
            "(unavailable: the server was unreachable, failed or timed out; failed: it answered "
            "with an error; circuit_open: refused by the breaker)",
            ["server", "tool", "reason"],
            registry=r,
        )
        self.duration = Histogram(
            "cadenza_mcp_call_duration_seconds",
            "MCP tool call latency, retries and backoff included, by server and tool",
            ["server", "tool"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.breaker_state = Gauge(
            "cadenza_mcp_breaker_state",
            "Circuit of each MCP server: 0 closed, 1 half-open, 2 open",
            ["server"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "cadenza_mcp_breaker_transitions_total",
            "Circuit state changes per MCP server",
            ["server", "to"],
            registry=r,
        )

    def server_added(self, server: str) -> None:
        """A configured server shows a closed circuit before its first call."""
        if "#" not in server:
            self.breaker_state.labels(server).set(0.0)

    def on_breaker_change(self, server: str, old: object, new: object) -> None:
        state = str(getattr(new, "value", new))
        log.warning("MCP circuit %s: %s -> %s", server, getattr(old, "value", old), state)
        if "#" in server:
            return
        self.breaker_state.labels(server).set(_BREAKER_VALUE.get(state, -1.0))
        self.breaker_transitions.labels(server, state).inc()

    def on_attempt_failed(self, server: str, tool: str, reason: str) -> None:
        self.errors.labels(*_label(server, tool), reason).inc()

    def on_call(self, server: str, tool: str, outcome: str, seconds: float) -> None:
        server, tool = _label(server, tool)
        self.calls.labels(server, tool, outcome).inc()
        self.duration.labels(server, tool).observe(seconds)
