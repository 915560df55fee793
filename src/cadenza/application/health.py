"""Health checks of registered agents, one kind per agent type, every ``interval_s``.

LLM, MCP and HTTP agents are asked (a model list, an MCP ping, a GET of the health URL); a
check that raises or outlasts ``timeout_s`` marks the agent unhealthy, one that passes marks it
healthy. Workers are not asked: they are healthy while their last heartbeat is younger than
three intervals. Draining agents are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

from cadenza.application.agent_definitions import AgentNotFound
from cadenza.application.agents import AgentRegistry
from cadenza.application.config_apply import gateway_for
from cadenza.application.outage_log import OutageLog
from cadenza.application.ports import Clock, HttpClient, HttpRequest
from cadenza.application.ports_ai import ToolGateway
from cadenza.application.providers import Providers
from cadenza.domain.agent import (
    Agent,
    AgentEvent,
    AgentRegistered,
    AgentStatus,
    AgentType,
    AgentUpdated,
)
from cadenza.domain.errors import InvalidTransition

log = logging.getLogger(__name__)

Check = Callable[[Agent], Awaitable[None]]
DEFAULT_INTERVAL_S = 30.0
DEFAULT_TIMEOUT_S = 5.0
HEARTBEAT_INTERVALS = 3  # a worker silent for this many intervals is unhealthy


class HealthChecker:
    def __init__(
        self,
        registry: AgentRegistry,
        checks: Mapping[AgentType, Check],
        clock: Clock,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._registry = registry
        self._checks = checks
        self._clock = clock
        self.interval_s = interval_s
        self._timeout_s = timeout_s
        self.last_round_at: float | None = None  # when ``run`` last finished a round here
        self._outage = OutageLog(log, "agent health check round")

    async def check_once(self) -> dict[str, AgentStatus]:
        """Check every agent concurrently; returns each checked agent's status afterwards."""
        agents = [a for a in await self._registry.agents() if a.status is not AgentStatus.DRAINING]
        verdicts = await asyncio.gather(*(self._verdict(a) for a in agents))
        out: dict[str, AgentStatus] = {}
        for agent, verdict in zip(agents, verdicts, strict=True):
            if verdict is None:
                out[agent.id] = agent.status
                continue
            # Deregistered or drained while it was being checked: nothing to record.
            with contextlib.suppress(AgentNotFound, InvalidTransition):
                if agent.type is AgentType.WORKER:
                    # judged on the agent as it is when written: a heartbeat may have landed
                    judged = await self._registry.judge(agent.id, self._heartbeat_verdict)
                    out[agent.id] = judged.status
                    continue
                status, reason = verdict
                out[agent.id] = (await self._registry.set_status(agent.id, status, reason)).status
        return out

    async def round(self) -> None:
        """One round of ``run``: a failure never ends health checking; a database outage
        is logged when it begins and ends, not at every round (``OutageLog``)."""
        with self._outage.round():
            await self.check_once()
            self.last_round_at = self._clock.now()

    async def run(self) -> None:
        """Check forever: every interval, and at once when an agent is registered or changed."""
        wake = asyncio.Event()

        def on_event(event: AgentEvent) -> None:
            if isinstance(event, AgentRegistered | AgentUpdated):
                wake.set()

        unsubscribe = self._registry.subscribe(on_event)
        try:
            while True:
                wake.clear()
                await self.round()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval_s):
                        await wake.wait()
        finally:
            unsubscribe()

    async def _verdict(self, agent: Agent) -> tuple[AgentStatus, str] | None:
        """The status ``agent`` should have and why; None when there is nothing to judge by."""
        if agent.type is AgentType.WORKER:
            return self._heartbeat_verdict(agent)
        check = self._checks.get(agent.type)
        if check is None:
            return None
        try:
            async with asyncio.timeout(self._timeout_s):
                await check(agent)
        except TimeoutError:
            return AgentStatus.UNHEALTHY, f"health check timed out after {self._timeout_s:g}s"
        except Exception as exc:  # any failure of the peer means the agent is not usable
            return AgentStatus.UNHEALTHY, f"health check failed: {str(exc) or type(exc).__name__}"
        return AgentStatus.HEALTHY, "health check passed"

    def _heartbeat_verdict(self, agent: Agent) -> tuple[AgentStatus, str]:
        if agent.last_seen is None:
            return AgentStatus.UNHEALTHY, "no heartbeat yet"
        age = self._clock.now() - agent.last_seen
        if age < HEARTBEAT_INTERVALS * self.interval_s:
            return AgentStatus.HEALTHY, "heartbeat"
        return AgentStatus.UNHEALTHY, f"no heartbeat for {age:.0f}s"


# ---- the checks bootstrap wires --------------------------------------------------------------
def provider_check(providers: Providers) -> Check:
    """LLM agents: their provider answers a model list."""

    async def check(agent: Agent) -> None:
        provider, _ = providers.resolve(
            agent.config.get("provider"), agent.config.get("model"), agent.workspace_id or ""
        )
        await provider.list_models()

    return check


def mcp_check(gateway: ToolGateway) -> Check:
    """MCP agents: their server answers a ``ping``."""

    async def check(agent: Agent) -> None:
        # a workspace's agent reaches its workspace's own stored server first
        scoped = gateway_for(gateway, agent.workspace_id or "")
        await scoped.ping(str(agent.config["server"]))

    return check


def health_url(agent: Agent) -> str:
    """``config.health_url``, else ``/health`` on the origin of ``config.url``."""
    explicit = agent.config.get("health_url")
    if isinstance(explicit, str) and explicit:
        return explicit
    parts = urlsplit(str(agent.config["url"]))
    return urlunsplit((parts.scheme, parts.netloc, "/health", "", ""))


def http_check(client: HttpClient, timeout_s: float = DEFAULT_TIMEOUT_S) -> Check:
    """HTTP agents: a GET of their health URL (through the egress guard) answers 2xx."""

    async def check(agent: Agent) -> None:
        response = await client.send(HttpRequest("GET", health_url(agent), timeout_s=timeout_s))
        if not 200 <= response.status < 300:
            raise RuntimeError(f"GET {health_url(agent)} returned status {response.status}")

    return check
