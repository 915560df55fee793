"""The runtime a process runs: its parts, and what starts, checks and stops them.

``Runtime`` holds what ``runtime.build`` made for a process of one role (``ServiceRole``):
the store, the engine, the agent registry and duties, the AI layer, egress, metrics, the bus
and its relay, the shared cache, quotas, retention, the runtime configuration and PII
redaction. ``start`` starts what the role runs, ``readiness`` reports on it, ``close`` stops
everything in the order that lets each part finish with the ones it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.agent_service import AgentDuties
from cadenza.application.agents import AgentRegistry
from cadenza.application.config_apply import ConfigApplier
from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine
from cadenza.application.external import ExternalWorkers
from cadenza.application.health import HealthChecker
from cadenza.application.leadership import Leadership
from cadenza.application.payloads import PLAIN, PayloadCodec
from cadenza.application.ports_ai import ToolGateway
from cadenza.application.ports_blobs import BlobStore
from cadenza.application.ports_bus import EventBus
from cadenza.application.providers import Providers
from cadenza.application.quotas import Quotas
from cadenza.application.readiness import Readiness, ServiceRole, database_check, engine_check
from cadenza.application.relay import Relay
from cadenza.application.runtime_config import RuntimeConfig
from cadenza.application.secrets import WorkspaceSecrets
from cadenza.bootstrap.cache import Caching
from cadenza.bootstrap.redaction import RedactionParts
from cadenza.bootstrap.retention import RetentionParts
from cadenza.infrastructure.egress import Egress
from cadenza.infrastructure.memory_store import MEMORY_URL, MemoryStore
from cadenza.infrastructure.observability.gauges import SystemGauges
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.tracer_provider import flush_traces
from cadenza.infrastructure.observability.tracing import Tracing
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates
from cadenza.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: SqlStore | MemoryStore
    definitions: Definitions
    engine: Engine
    egress: Egress
    providers: Providers
    gateway: ToolGateway
    agents: AgentRegistry
    external: ExternalWorkers
    health: HealthChecker
    metrics: Metrics
    secrets: WorkspaceSecrets
    templates: JinjaTemplates
    role: ServiceRole
    leadership: Leadership  # runs ``duties`` while this process holds the agent-health lease
    duties: AgentDuties
    ping: Callable[[], Awaitable[None]]  # a read of the store, for readiness
    gauges: SystemGauges  # system-wide gauges: ``await gauges.refresh()`` before a scrape
    _duties_task: asyncio.Task[None] | None = None
    # the event bus (``open_bus``) and, when it crosses processes, the outbox relay
    bus: EventBus | None = None
    relay: Relay | None = None
    owns_bus: bool = True  # False when ``build`` was given a bus (tests share one)
    caching: Caching | None = None  # shared cache + invalidation (bootstrap/cache.py)
    quotas: Quotas | None = None  # workspace quotas (application/quotas.py)
    retention: RetentionParts | None = None  # the job (lease "retention") and the API's cases
    config: RuntimeConfig | None = None  # stored runtime configuration (the API edits it)
    applier: ConfigApplier | None = None  # applies it in this process (bootstrap/config.py)
    redaction: RedactionParts | None = None  # PII rules, codec on the store, log processor
    tracing: Tracing | None = None  # the engine's spans, when traced (the API feeds it ends)

    def database(self) -> AsyncEngine:
        """The SQL database of the tables beside the store (identity, queries): the API's."""
        if isinstance(self.store, MemoryStore):
            raise ValueError(f"{MEMORY_URL} runs the engine only: the API needs a SQL database")
        return self.store.engine

    def payload_codec(self) -> PayloadCodec:
        """The codec of stored payloads (docs/payloads.md): the store's; none in memory."""
        return PLAIN if isinstance(self.store, MemoryStore) else self.store.codec

    def blob_store(self) -> BlobStore | None:
        """Where offloaded payloads live (None: offload is off)."""
        return None if isinstance(self.store, MemoryStore) else self.store.blobs

    async def start(self) -> None:
        """Start what the role runs: the engine (all, api, worker); the agent duties, health
        checks and assignment bookkeeping, while holding their lease (all, agents)."""
        if self.redaction is not None:
            await self.redaction.start()
        if self.applier is not None:
            try:  # tasks claimed from now on see the stored providers
                await self.applier.reload()
            except Exception:  # the database is away: the reload loop tries again
                log.warning("runtime configuration not loaded at start", exc_info=True)
            self.applier.start()
        if self.caching is not None:
            changed = self.applier.changed if self.applier is not None else None
            rules = self.redaction.rules.invalidate if self.redaction is not None else None
            self.caching.start(
                self.agents, quotas=self.quotas, config=changed, redaction=rules or (lambda: None)
            )
        if self.role.runs_engine:
            await self.engine.start()
            if self.relay is not None:
                await self.relay.start()
        if self.role.has_agent_duties:
            self._duties_task = asyncio.create_task(self.leadership.run(), name="agent-duties")
            if self.retention is not None:
                self.retention.start()

    async def readiness(self, extra: Mapping[str, str] | None = None) -> Readiness:
        """The role's readiness: the store answers, the engine runs (where it does), plus
        ``extra`` checks; for roles with agent duties, whether this process is the leader."""
        checks = {"database": await database_check(self.ping)}
        if self.role.runs_engine:
            checks["engine"] = engine_check(self.engine)
        if self.role.runs_engine and self.bus is not None:  # its events reach the bus
            down = self.relay.down if self.relay is not None else None
            checks["bus"] = "ok" if down is None else f"unavailable: {down}"
        checks.update(extra or {})
        self.metrics.on_readiness(checks)  # cadenza_dependency_up
        if not self.role.has_agent_duties:
            return Readiness(str(self.role), checks)
        checked = self.health.last_round_at if self.leadership.leader else None
        return Readiness(
            str(self.role), checks, self.leadership.leader, {"health_checked_at": checked}
        )

    async def refresh_metrics(self) -> None:
        """Before a scrape: the store-counted gauges, and the readiness checks as gauges
        (``cadenza_dependency_up``), so a dependency's loss shows without a probe."""
        await asyncio.gather(self.gauges.refresh(), self.readiness())

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop everything; running tasks get ``grace_s`` to finish (see ``Engine.stop``)."""
        if self._duties_task is not None:
            self._duties_task.cancel()  # its end releases the lease: a standby takes over
            with contextlib.suppress(asyncio.CancelledError):
                await self._duties_task
        if self.retention is not None:
            await self.retention.aclose()
        await self.engine.stop(grace_s)
        if self.quotas is not None:  # the batched usage of turns without a budget
            await self.quotas.aclose()
        if self.relay is not None:
            await self.relay.stop()
        if self.caching is not None:  # its follower leaves the bus before the bus closes
            await self.caching.aclose()
        if self.applier is not None:
            await self.applier.aclose()
        if self.bus is not None and self.owns_bus:
            await self.bus.aclose()
        await self.external.aclose()
        await self.gateway.aclose()
        await self.providers.aclose()
        await self.egress.aclose()
        if self.redaction is not None:
            await self.redaction.aclose()
        await self.gauges.aclose()  # a count left running by a cancelled scrape ends first
        await self.store.close()
        self.templates.close()
        await asyncio.to_thread(flush_traces)
