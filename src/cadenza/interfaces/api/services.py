"""What the API needs from the rest of the system, handed in by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cadenza.application.agents import AgentRegistry
from cadenza.application.audit import Auditor
from cadenza.application.external import ExternalWorkers
from cadenza.application.feed import EventHub
from cadenza.application.identity import Identity, Principal
from cadenza.application.payload_reads import PayloadReads
from cadenza.application.pii_rules import Redaction
from cadenza.application.ports_ai import ToolGateway
from cadenza.application.processes import Processes
from cadenza.application.providers import Providers
from cadenza.application.readiness import Readiness
from cadenza.application.retention import Retention
from cadenza.application.runtime_config import RuntimeConfig
from cadenza.application.secrets import WorkspaceSecrets
from cadenza.interfaces.api.streams import WireCache


class RateLimiter(Protocol):
    """Decide whether a caller may make one more request (adapter: infrastructure.ratelimit).

    Buckets: ``"api"`` keyed by the principal's subject, ``"login"`` keyed by client IP.
    """

    async def hit(self, bucket: str, key: str) -> float | None:
        """None when allowed; else seconds until the caller may try again."""
        ...


class NoRateLimit:
    """Allows everything: the default when the composition root installs no limiter."""

    async def hit(self, bucket: str, key: str) -> float | None:
        return None


@dataclass
class ApiConfig:
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = 1_048_576
    static_dir: Path | None = None  # the built web console, served at /
    settings_view: dict[str, object] = field(default_factory=dict)  # shown to admins


@dataclass
class ApiServices:
    processes: Processes
    identity: Identity
    hub: EventHub
    agents: AgentRegistry
    external: ExternalWorkers
    providers: Providers
    gateway: ToolGateway
    metrics_text: Callable[[], bytes]
    readiness: Callable[[], Awaitable[Readiness]]
    metrics_token: str = ""  # also accepted by /metrics (Prometheus); empty: a viewer key only
    # counts the system-wide gauges in the store before a scrape (at most once per interval)
    metrics_refresh: Callable[[], Awaitable[None]] | None = None
    metrics_series: Callable[[], dict[str, object]] | None = None  # dashboard time series
    limiter: RateLimiter = field(default_factory=NoRateLimit)
    secrets: WorkspaceSecrets | None = None  # None: the secrets routes answer 503
    audit: Auditor | None = None  # None: nothing is audited and GET /audit answers 503
    retention: Retention | None = None  # None: the retention routes answer 503
    config: RuntimeConfig | None = None  # None: the runtime configuration routes answer 503
    redaction: Redaction | None = None  # None: the redaction routes answer 503
    payloads: PayloadReads | None = None  # offloaded payloads by hash; None: 404
    # optional mounts built by the composition root (GraphQL, MCP); each gets the principal
    # resolver so they share the API's auth
    extra_mounts: list[Callable[..., None]] = field(default_factory=list)
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    wire_cache: WireCache = field(default_factory=WireCache)  # SSE bytes, encoded once
    stream_recheck_s: float = 5.0  # open streams re-check their credentials this often


PrincipalResolver = Callable[[str | None, str | None], Awaitable[Principal]]
