"""What ``cadenza mcp-proxy`` builds: the configured MCP servers' pooled gateway under the
client policy (breaker, retries, timeout, metrics) and the HTTP server of the proxy app.

Given the deployment's database (``database_url`` set), the proxy also holds the MCP servers
stored through the API (``runtime_config``) and the live MCP settings, and applies changes
without a restart exactly as the other processes do: a ``ConfigApplier`` over a
``LiveGateway`` whose pooled gateway is the one the proxy serves, reloaded on a
``ConfigChanged`` message of the bus, every ``cache_refresh_s`` and on (re)joining the bus.
Workers name the workspace of each request, and the proxy routes it to that workspace's own
server first (``application.mcp_scopes``). Approvals of changed tools are read from the
database too (``tool_approvals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.config_apply import ConfigApplier
from cadenza.application.invalidation import Targets, follow
from cadenza.application.ports_approvals import ToolApprovals
from cadenza.bootstrap.ai import ConfigError, policy_gateway
from cadenza.bootstrap.bus import open_bus
from cadenza.bootstrap.cache import CLOSE_TIMEOUT_S, refresh_interval
from cadenza.bootstrap.config import UrlPolicy, runtime_config
from cadenza.bootstrap.mcp_live import LiveGateway
from cadenza.bootstrap.stop_on_term import uvicorn_server
from cadenza.bootstrap.store import keyring
from cadenza.infrastructure.mcp.proxy_auth import ProxyConfig, check_tokens
from cadenza.infrastructure.mcp.proxy_protocol import check_server_name
from cadenza.infrastructure.mcp.proxy_server import build_app
from cadenza.infrastructure.memory_store import MEMORY_URL
from cadenza.infrastructure.observability.logging import configure_logging
from cadenza.infrastructure.observability.tracer_provider import install_tracing
from cadenza.settings import Settings

log = logging.getLogger(__name__)


class _Clock:  # bootstrap.runtime's SystemClock would load the engine into the proxy
    def now(self) -> float:
        return time.time()


def proxy_config(settings: Settings) -> ProxyConfig:
    """The proxy's credentials and limits; ConfigError names what is missing."""
    config = ProxyConfig(
        token=settings.mcp_proxy_token,
        metrics_token=settings.metrics_token,
        max_body_bytes=settings.max_body_bytes,
    )
    try:
        check_tokens(config)
        for server in settings.mcp_servers:
            check_server_name(server.name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return config


def database(settings: Settings) -> AsyncEngine | None:
    """The deployment's database when the proxy is given one (else its pins live in its
    memory and it holds the environment's servers only)."""
    if "database_url" not in settings.model_fields_set or settings.database_url == MEMORY_URL:
        return None
    from cadenza.infrastructure.sql.database import create_engine

    return create_engine(settings.database_url)


def stored_approvals(engine: AsyncEngine | None) -> ToolApprovals | None:
    """Tool re-approvals made on any API process (the ``tool_approvals`` table)."""
    if engine is None:
        return None
    from cadenza.infrastructure.sql.approvals import SqlToolApprovals

    return SqlToolApprovals(engine)


@dataclass
class StoredServers:
    """The stored MCP servers applied in the proxy: the applier and the bus it follows."""

    applier: ConfigApplier
    settings: Settings
    engine: AsyncEngine

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Apply the stored configuration now, then follow its changes until the app stops."""
        try:
            await self.applier.reload()
        except Exception:  # the database is away: the reload loop tries again
            log.warning("runtime configuration not loaded at start", exc_info=True)
        self.applier.start()
        bus = None if self.settings.bus_url.startswith("memory:") else open_bus(self.settings)
        follower = None
        if bus is not None:
            targets = Targets(
                agents=lambda: None,
                definitions=lambda workspace_id, process_id: None,
                everything=self.applier.poke,  # on (re)joining: a change may have been missed
                config=self.applier.changed,
            )
            group = f"mcp-proxy-{uuid.uuid4().hex}"
            follower = asyncio.create_task(follow(bus, group, targets), name="mcp-proxy-config")
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.wait({follower}, timeout=CLOSE_TIMEOUT_S)
            if bus is not None:
                await bus.aclose()
            await self.applier.aclose()
            await self.engine.dispose()


def stored_servers(settings: Settings, engine: AsyncEngine, live: LiveGateway) -> StoredServers:
    """The applier of the stored MCP servers and live MCP settings onto ``live``."""
    from cadenza.infrastructure.sql.runtime_config import SqlConfigStore

    async def unannounced(workspace_id: str, kind: str, name: str) -> None:
        return None  # the proxy changes nothing: it only reads

    config = runtime_config(
        settings, SqlConfigStore(engine), keyring(settings), _Clock(), unannounced
    )
    refresh_s = refresh_interval(settings, remote=not settings.bus_url.startswith("memory:"))
    env = config.environment
    applier = ConfigApplier(
        config.resolved, None, None, live, env.settings, refresh_s, env.fixed_settings
    )
    return StoredServers(applier, settings, engine)


def proxy_server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    """The uvicorn server of the proxy on ``host:port``. Raises ConfigError."""
    config = proxy_config(settings)
    configure_logging(json=settings.log_json)
    install_tracing(settings.otlp_endpoint)  # proxied calls continue their worker's trace
    engine = database(settings)
    approvals = stored_approvals(engine)
    gateway = policy_gateway(settings, approvals=approvals)
    background: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None
    live = LiveGateway(
        gateway,
        settings,
        approvals=approvals,
        url_refusal=UrlPolicy(settings.config_allowed_hosts).written,
    )
    if engine is not None:
        background = stored_servers(settings, engine, live).running
    app = build_app(gateway, config, live.scopes.route, background)
    return uvicorn_server(app, host, port, settings.shutdown_grace_s)
