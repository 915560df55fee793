"""What ``cadenza mcp-proxy`` builds: the configured MCP servers' pooled gateway under the
client policy (breaker, retries, timeout, metrics) and the HTTP server of the proxy app."""

from __future__ import annotations

import uvicorn

from cadenza.application.ports_approvals import ToolApprovals
from cadenza.bootstrap.ai import ConfigError, policy_gateway
from cadenza.bootstrap.stop_on_term import uvicorn_server
from cadenza.infrastructure.mcp.proxy_protocol import check_server_name
from cadenza.infrastructure.mcp.proxy_server import ProxyConfig, build_app, check_tokens
from cadenza.infrastructure.memory_store import MEMORY_URL
from cadenza.infrastructure.observability.logging import configure_logging
from cadenza.infrastructure.observability.tracer_provider import install_tracing
from cadenza.settings import Settings


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


def stored_approvals(settings: Settings) -> ToolApprovals | None:
    """Tool re-approvals made on any API process (the ``tool_approvals`` table), when the
    proxy is given the deployment's database; without one its pins live in its memory."""
    if "database_url" not in settings.model_fields_set or settings.database_url == MEMORY_URL:
        return None
    from cadenza.infrastructure.sql.approvals import SqlToolApprovals
    from cadenza.infrastructure.sql.database import create_engine

    return SqlToolApprovals(create_engine(settings.database_url))


def proxy_server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    """The uvicorn server of the proxy on ``host:port``. Raises ConfigError."""
    config = proxy_config(settings)
    configure_logging(json=settings.log_json)
    install_tracing(settings.otlp_endpoint)  # proxied calls continue their worker's trace
    app = build_app(policy_gateway(settings, approvals=stored_approvals(settings)), config)
    return uvicorn_server(app, host, port, settings.shutdown_grace_s)
