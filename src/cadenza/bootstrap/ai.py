"""Composition of the AI layer: model providers and MCP servers named in settings."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cadenza.application.ports_ai import ModelProvider, ToolError, ToolGateway, ToolInfo, ToolResult
from cadenza.application.ports_approvals import ToolApprovals
from cadenza.application.providers import Price, ProviderInfo, Providers
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.llm.offline import OfflineProvider
from cadenza.infrastructure.llm.resilient import ResilientProvider
from cadenza.infrastructure.resilience import Breaker, StateListener
from cadenza.settings import ProviderSettings, Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from cadenza.infrastructure.mcp import HttpServer, StdioServer
    from cadenza.infrastructure.mcp.resilient import ResilientGateway


class ConfigError(ValueError):
    """A setting that cannot work; the message names it."""


def _key(p: ProviderSettings, key: str | None = None) -> str:
    if key:  # stored configuration: the key itself, opened from its sealed row
        return key
    if not p.api_key_env:
        return "not-needed"  # local servers (Ollama, vLLM) accept any key
    value = os.environ.get(p.api_key_env)
    if not value:
        raise ConfigError(f"provider {p.name!r}: environment variable {p.api_key_env} is not set")
    return value


def _provider(
    p: ProviderSettings, on_change: StateListener | None = None, key: str | None = None
) -> ModelProvider:
    if p.kind == "offline":
        return OfflineProvider(p.name)
    if p.kind == "anthropic":
        # SDKs are imported only when configured: anthropic alone is ~40 MB RSS and ~2 s
        from cadenza.infrastructure.llm.anthropic import AnthropicProvider

        inner: ModelProvider = AnthropicProvider(
            p.name,
            api_key=_key(p, key),
            base_url=p.base_url,
            default_model=p.default_model,
            pool_size=p.pool_size,
        )
    else:
        if not p.base_url:
            raise ConfigError(f"provider {p.name!r}: base_url is required for kind openai")
        from cadenza.infrastructure.llm.openai_compatible import OpenAICompatibleProvider

        inner = OpenAICompatibleProvider(
            p.name,
            base_url=p.base_url,
            api_key=_key(p, key),
            default_model=p.default_model,
            pool_size=p.pool_size,
        )
    return ResilientProvider(inner, Breaker(p.name, on_change=on_change))


def _info(p: ProviderSettings, provider: ModelProvider) -> ProviderInfo:
    breaker = provider.breaker if isinstance(provider, ResilientProvider) else None
    state = None if breaker is None else (lambda: breaker.state.value)
    return ProviderInfo(p.kind, p.base_url, state)


def build_providers(settings: Settings, on_change: StateListener | None = None) -> Providers:
    """The configured providers plus ``offline``, always there for demos and tests."""
    providers: dict[str, ModelProvider] = {"offline": OfflineProvider("offline")}
    info = {"offline": ProviderInfo("offline")}
    models: dict[str, str] = {}
    for p in settings.providers:
        providers[p.name] = _provider(p, on_change)
        info[p.name] = _info(p, providers[p.name])
        if p.default_model:
            models[p.name] = p.default_model
    if settings.default_provider not in providers:
        raise ConfigError(
            f"default_provider {settings.default_provider!r} is not configured "
            f"(configured: {', '.join(sorted(providers))})"
        )
    prices = {m: Price(v.prompt, v.completion) for m, v in settings.prices.items()}
    return Providers(providers, settings.default_provider, models, prices, info=info)


class NoServers:
    """The tool gateway when no MCP server is configured (the mcp SDK is never imported)."""

    async def list_tools(self, server: str) -> list[ToolInfo]:
        raise ToolError(f"no MCP server named {server!r} is configured", retryable=False)

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        raise ToolError(f"no MCP server named {server!r} is configured", retryable=False)

    async def ping(self, server: str) -> None:
        raise ToolError(f"no MCP server named {server!r} is configured", retryable=False)

    async def aclose(self) -> None:
        return None


def mcp_server(
    name: str,
    command: str | None,
    args: Sequence[str],
    env: Mapping[str, str],
    url: str | None,
    headers: Mapping[str, str],
) -> StdioServer | HttpServer:
    """One MCP server's gateway configuration: a stdio command or a URL, never both."""
    from cadenza.infrastructure.mcp import HttpServer, StdioServer

    if command and not url:
        return StdioServer(name, command, tuple(args), dict(env))
    if url and not command:
        return HttpServer(name, url, dict(headers))
    raise ConfigError(f"MCP server {name!r}: give either command or url")


def mcp_servers(settings: Settings) -> list[StdioServer | HttpServer]:
    """The MCP servers named in settings, as the gateway's configurations."""
    return [
        mcp_server(s.name, s.command, s.args, s.env, s.url, s.headers) for s in settings.mcp_servers
    ]


def build_gateway(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    approvals: ToolApprovals | None = None,
) -> ToolGateway:
    """Through the MCP proxy when ``mcp_proxy_url`` is set, else this process's own sessions
    under the same client policy as the proxy's (its metrics on ``registry``)."""
    if settings.mcp_proxy_url:
        if not settings.mcp_proxy_token:
            raise ConfigError("mcp_proxy_url is set but mcp_proxy_token is not")
        from cadenza.infrastructure.mcp.proxy_client import ProxyToolGateway

        return ProxyToolGateway(settings.mcp_proxy_url, settings.mcp_proxy_token)
    if not settings.mcp_servers:
        return NoServers()
    return policy_gateway(settings, registry, approvals)


def policy_gateway(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    approvals: ToolApprovals | None = None,
) -> ResilientGateway:
    """The configured servers' pooled sessions under the client policy of the settings."""
    from cadenza.infrastructure.mcp import McpGateway
    from cadenza.infrastructure.mcp.resilient import McpClientPolicy, ResilientGateway
    from cadenza.infrastructure.observability.mcp_metrics import McpMetrics

    policy = McpClientPolicy(
        breaker_failures=settings.mcp_breaker_failures,
        breaker_reset_s=settings.mcp_breaker_reset_s,
        call_timeout_s=settings.mcp_call_timeout_s,
    )
    return ResilientGateway(
        McpGateway(mcp_servers(settings), approvals=approvals), policy, McpMetrics(registry)
    )


def provider_client(
    p: ProviderSettings, key: str | None = None, on_change: StateListener | None = None
) -> tuple[ModelProvider, ProviderInfo]:
    """A client for ``p`` (``key``: its API key itself, for stored configuration)."""
    provider = _provider(p, on_change, key)
    return provider, _info(p, provider)


async def reconfigure_provider(
    providers: Providers, settings: ProviderSettings, on_change: StateListener | None = None
) -> None:
    """Apply a provider's new configuration: build its client anew and drop the cached one."""
    provider = _provider(settings, on_change)
    info = _info(settings, provider)
    await providers.replace(settings.name, provider, settings.default_model, info)
