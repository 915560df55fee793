"""Runtime configuration wired to concrete adapters: the URL policy for API-supplied URLs,
the validator (a provider test call, an MCP handshake), the process's live MCP sessions, and
the ``RuntimeConfig`` service and ``ConfigApplier`` of a runtime.

URLs given through the API are hostile input (a workspace admin is not trusted with the
server's network): their host is checked with the egress guard's policy (``EgressPolicy``)
when saved (every address the name resolves to) and again by each process before it builds a
client (the host as written). Private, loopback, link-local and metadata addresses are
refused unless ``config_allowed_hosts`` lists the host or network. Providers and MCP servers
of the environment are the operator's and are not checked, as before.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError, create_model
from yarl import URL

from cadenza.application.config_apply import ConfigApplier
from cadenza.application.config_model import (
    LIVE_SETTINGS,
    SHARED,
    ConfigStore,
    Environment,
    McpSpec,
    ProviderSpec,
)
from cadenza.application.ports import Clock
from cadenza.application.ports_ai import ModelProvider, ToolError
from cadenza.application.providers import ProviderInfo, Providers, probe_models
from cadenza.application.runtime_config import Announce, RuntimeConfig
from cadenza.application.secrets import Cipher
from cadenza.bootstrap.ai import ConfigError, provider_client
from cadenza.bootstrap.mcp_live import LiveGateway
from cadenza.infrastructure.egress import EgressPolicy
from cadenza.infrastructure.resilience import StateListener
from cadenza.settings import ProviderSettings, Settings

if TYPE_CHECKING:
    from cadenza.domain.json import JSONObject

VALIDATE_TIMEOUT_S = 20.0  # a test call or handshake must answer sooner than a browser gives up


class UrlPolicy:
    """The egress guard's policy for API-supplied URLs: public addresses only, plus
    ``config_allowed_hosts``."""

    def __init__(self, allowed_hosts: list[str]) -> None:
        self._policy = EgressPolicy(allow_private=False, allowed_hosts=frozenset(allowed_hosts))

    def written(self, url: str) -> str | None:
        """Judged on the URL as written (scheme, literal address, metadata host names)."""
        try:
            return self._policy.url_refusal(URL(url))
        except ValueError as exc:
            return f"not a URL: {exc}"

    async def refusal(self, url: str) -> str | None:
        """``written``, then every address the host resolves to now."""
        reason = self.written(url)
        if reason is not None:
            return reason
        parsed = URL(url)
        host = parsed.host or ""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parsed.port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            return f"{host} does not resolve: {exc}"
        for info in infos:
            address = str(info[4][0])
            why = self._policy.address_refusal(address, host)
            if why is not None:
                return (
                    f"{host} resolves to a refused address ({why}); an operator may admit it "
                    "with config_allowed_hosts"
                )
        return None


def provider_settings(spec: ProviderSpec) -> ProviderSettings:
    kind = spec.kind if spec.kind in ("openai", "anthropic", "offline") else "openai"
    return ProviderSettings(
        name=spec.name,
        kind=kind,  # type: ignore[arg-type]
        base_url=spec.base_url,
        default_model=spec.default_model,
        pool_size=spec.pool_size,
    )


def spec_client(
    spec: ProviderSpec, urls: UrlPolicy, on_change: StateListener | None = None
) -> tuple[ModelProvider, ProviderInfo]:
    """A client for a stored provider; ConfigError when its URL is refused now."""
    if spec.base_url:
        reason = urls.written(spec.base_url)
        if reason is not None:
            raise ConfigError(f"provider {spec.name!r}: URL refused: {reason}")
    return provider_client(provider_settings(spec), spec.api_key, on_change)


class Validator:
    """``ConfigValidator`` over the real clients."""

    def __init__(self, urls: UrlPolicy, timeout_s: float = VALIDATE_TIMEOUT_S) -> None:
        self._urls = urls
        self._timeout_s = timeout_s

    async def provider(self, spec: ProviderSpec) -> str | None:
        try:
            client, _ = spec_client(spec, self._urls)
        except (ConfigError, ValueError) as exc:
            return str(exc)
        try:  # the test call of POST /providers/{name}/test, on the candidate client
            found = await probe_models(client, self._timeout_s)
        finally:
            await client.aclose()
        return None if found.ok else found.detail

    async def mcp_server(self, spec: McpSpec) -> str | None:
        from cadenza.infrastructure.mcp import McpGateway

        gateway = McpGateway(
            [LiveGateway.server(spec.name, spec)], connect_timeout_s=self._timeout_s
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                await gateway.list_tools(spec.name)
        except ToolError as exc:
            return str(exc)
        except TimeoutError:
            return f"no handshake and tool list within {self._timeout_s:g} s"
        finally:
            await gateway.aclose()
        return None

    async def url(self, url: str) -> str | None:
        return await self._urls.refusal(url)

    def setting(self, name: str, value: object) -> tuple[object, str | None]:
        field = Settings.model_fields.get(name)
        if field is None or name not in LIVE_SETTINGS:
            return value, f"{name!r} is not a live setting"
        annotation: Any = field.annotation
        model = create_model("LiveSetting", value=(annotation, field))
        try:
            typed = model.model_validate({"value": value})
        except ValidationError as exc:
            return value, "; ".join(str(e["msg"]) for e in exc.errors())
        value_now: object = typed.model_dump()["value"]
        return value_now, None


def environment(settings: Settings) -> Environment:
    """What the settings define: read-only through the API."""
    providers: dict[str, JSONObject] = {"offline": {"kind": "offline", "base_url": None}}
    for p in settings.providers:
        providers[p.name] = {
            "kind": p.kind,
            "base_url": p.base_url,
            "default_model": p.default_model,
            "pool_size": p.pool_size,
            "has_api_key": bool(p.api_key_env),
        }
    servers: dict[str, JSONObject] = {
        s.name: {
            "command": s.command,
            "args": [*s.args],
            "url": s.url,
            "env_names": [*sorted(s.env)],
            "header_names": [*sorted(s.headers)],
        }
        for s in settings.mcp_servers
    }
    values = {name: getattr(settings, name) for name in LIVE_SETTINGS}
    fixed = frozenset(n for n in LIVE_SETTINGS if n in settings.model_fields_set)
    return Environment(providers, servers, values, fixed)


def runtime_config(
    settings: Settings, store: ConfigStore, cipher: Cipher, clock: Clock, announce: Announce
) -> RuntimeConfig:
    validator = Validator(UrlPolicy(settings.config_allowed_hosts))
    return RuntimeConfig(store, cipher, clock, environment(settings), validator, announce)


def config_applier(
    settings: Settings,
    config: RuntimeConfig,
    providers: Providers,
    gateway: LiveGateway | None,
    refresh_s: float,
    on_change: StateListener | None = None,
) -> ConfigApplier:
    """The process's applier; it reloads on ``config``'s local changes too."""
    urls = UrlPolicy(settings.config_allowed_hosts)
    env = config.environment
    applier = ConfigApplier(
        config.resolved,
        providers,
        # a workspace's own provider: no breaker series on /metrics (read across workspaces)
        lambda spec, scope: spec_client(spec, urls, on_change if scope == SHARED else None),
        gateway,
        env.settings,
        refresh_s,
        env.fixed_settings,
    )
    config.local.append(applier.poke)
    return applier
