"""The client policy for every MCP server (DESIGN §6), around the pooled ``McpGateway``.

Per server one circuit breaker (``resilience.Breaker``): it opens after ``breaker_failures``
consecutive failed attempts, stays open ``breaker_reset_s``, then lets one trial call through.
A failed attempt is one that says the server is unhealthy (``ToolUnavailable``: unreachable,
lost mid-call, timed out); an error the server answered with proves it alive.

Retries (``resilience.call_with_resilience``: ``RETRY_ATTEMPTS`` attempts, exponential backoff
from ``RETRY_INITIAL_S`` with jitter) happen only for tools whose annotations make a blind
retry safe (``policy.retry_allowed``: read-only, or idempotent and not destructive); any other
tool is called exactly once here, and its caller decides. Each attempt is bounded by the
call's own timeout inside the gateway, so a timeout is classified with the tool's annotations
like any other unknown outcome.

Listing a catalog does not drive the breaker (it runs nothing and is served from the cache),
but an open circuit refuses it too, so a dead server costs callers nothing until its trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import mcp_types as types

from cadenza.application.ports_ai import ServerInfo, ToolError, ToolInfo, ToolResult
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.mcp.calls import ToolUnavailable
from cadenza.infrastructure.mcp.catalog import tool_result
from cadenza.infrastructure.mcp.config import ServerConfig
from cadenza.infrastructure.mcp.gateway import McpGateway
from cadenza.infrastructure.mcp.policy import retry_allowed
from cadenza.infrastructure.observability.mcp_metrics import UNKNOWN_TOOL, McpMetrics
from cadenza.infrastructure.resilience import (
    Breaker,
    BreakerState,
    CircuitOpenError,
    call_with_resilience,
)

RETRY_ATTEMPTS = 3  # attempts of a retry-safe call, the first included (DESIGN §6)
RETRY_INITIAL_S = 0.1  # first backoff; doubles each retry, plus up to as much jitter
RETRY_MAX_S = 10.0  # cap of one backoff


@dataclass(frozen=True)
class McpClientPolicy:
    """Breaker and timeout settings (``Settings.mcp_breaker_failures`` etc.)."""

    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    call_timeout_s: float = 30.0


class ResilientGateway:
    """``ToolGateway`` (and ``ToolPins``) over ``McpGateway`` with breaker, retry, metrics."""

    def __init__(
        self,
        inner: McpGateway,
        policy: McpClientPolicy | None = None,
        metrics: McpMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.policy = policy or McpClientPolicy()
        self.metrics = metrics or McpMetrics()
        self._clock = clock
        self.breakers: dict[str, Breaker] = {}
        for info in inner.servers():
            self._add_breaker(info.name)

    def _add_breaker(self, name: str) -> None:
        self.breakers[name] = Breaker(
            name,
            threshold=self.policy.breaker_failures,
            reset_s=self.policy.breaker_reset_s,
            on_change=self.metrics.on_breaker_change,
            clock=self._clock,
        )
        self.metrics.server_added(name)

    # --- changes while running (runtime configuration) -----------------------------------

    async def put_server(self, config: ServerConfig) -> None:
        """Add or replace a server; a replaced one starts with a closed circuit."""
        await self.inner.put_server(config)
        self._add_breaker(config.name)

    async def remove_server(self, name: str) -> None:
        await self.inner.remove_server(name)
        self.breakers.pop(name, None)

    def reconfigure(self, policy: McpClientPolicy) -> None:
        """New breaker and timeout values: for new calls, and every circuit's next count."""
        self.policy = policy
        for breaker in self.breakers.values():
            breaker.threshold = policy.breaker_failures
            breaker.reset_s = policy.breaker_reset_s

    # --- catalog ------------------------------------------------------------------------

    def _refuse_if_open(self, server: str) -> None:
        breaker = self.breakers.get(server)
        wait = breaker.open_for() if breaker is not None else 0.0
        if wait > 0:
            raise ToolUnavailable(
                f"MCP server {server}: circuit open after repeated failures; retry in {wait:.1f} s",
                retryable=True,
            )

    async def list_tools(self, server: str) -> list[ToolInfo]:
        self._refuse_if_open(server)
        return await self.inner.list_tools(server)

    async def definitions(self, server: str) -> list[types.Tool]:
        """The server's tools as it sent them (what the proxy passes on)."""
        self._refuse_if_open(server)
        return await self.inner.definitions(server)

    # --- calls --------------------------------------------------------------------------

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        raw = await self.call_tool_raw(
            server, name, arguments, idempotency_key=idempotency_key, timeout_s=timeout_s
        )
        return tool_result(raw)

    async def call_tool_raw(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float | None = None,
    ) -> types.CallToolResult:
        """One call under the policy; the server's result as sent. Raises ToolError."""
        breaker = self.breakers.get(server)
        if breaker is None:
            raise ToolError(f"unknown MCP server {server!r}", retryable=False)
        budget = timeout_s if timeout_s is not None else self.policy.call_timeout_s
        label = name if self.inner.cached(server, name) is not None else UNKNOWN_TOOL
        started = self._clock()

        async def attempt() -> types.CallToolResult:
            try:
                return await self.inner.call_tool_raw(
                    server, name, arguments, idempotency_key=idempotency_key, timeout_s=budget
                )
            except ToolError as exc:
                reason = "unavailable" if isinstance(exc, ToolUnavailable) else "failed"
                self.metrics.on_attempt_failed(server, label, reason)
                raise

        def retry_safe(exc: BaseException) -> bool:
            info = self.inner.cached(server, name)
            return (
                isinstance(exc, ToolError)
                and exc.retryable
                and info is not None
                and retry_allowed(info)
            )

        try:
            result = await call_with_resilience(
                attempt,
                name=f"mcp {server}/{name}",
                breaker=breaker,
                is_retryable=retry_safe,
                is_failure=lambda exc: isinstance(exc, ToolUnavailable),
                timeout_s=None,  # the gateway bounds each attempt by ``budget``
                attempts=RETRY_ATTEMPTS,
                initial_s=RETRY_INITIAL_S,
                max_s=RETRY_MAX_S,
            )
        except CircuitOpenError as exc:
            self.metrics.on_attempt_failed(server, label, "circuit_open")
            self.metrics.on_call(server, label, "circuit_open", self._clock() - started)
            # Nothing was sent: trying again later is safe whatever the tool does.
            raise ToolUnavailable(f"MCP server {server}: {exc}", retryable=True) from exc
        except ToolError as exc:
            outcome = "unavailable" if isinstance(exc, ToolUnavailable) else "failed"
            self.metrics.on_call(server, label, outcome, self._clock() - started)
            raise
        outcome = "tool_error" if result.is_error else "ok"
        self.metrics.on_call(server, label, outcome, self._clock() - started)
        return result

    async def ping(self, server: str) -> None:
        self._refuse_if_open(server)
        await self.inner.ping(server)

    # --- state --------------------------------------------------------------------------

    def readiness(self, server: str) -> str | None:
        """``"ok"`` when the catalog is loaded and the circuit closed; why not otherwise;
        None while the server has been neither loaded nor found failing."""
        breaker = self.breakers[server]
        if breaker.state is BreakerState.OPEN:
            return f"circuit open, next trial in {breaker.open_for():.1f} s"
        if breaker.state is BreakerState.HALF_OPEN:
            return "circuit half-open: trial call in progress"
        return "ok" if self.inner.loaded(server) else None

    def servers(self) -> list[ServerInfo]:
        return self.inner.servers()

    def pinned_hash(self, server: str, tool: str) -> str | None:
        return self.inner.pinned_hash(server, tool)

    async def approve(self, server: str, tool: str, approved_by: str = "") -> None:
        await self.inner.approve(server, tool, approved_by)

    async def aclose(self) -> None:
        await self.inner.aclose()
