"""The runtime of a Cadenza process (``cadenza worker``, ``agents``, ``run``, ``serve``): the
store, the templates, the AI layer, egress, metrics, tracing, the executors, the engine and the
agent duties, built from settings by ``build`` and closed by ``Runtime.close``. What
``Runtime.start`` starts is the process's role's (``ServiceRole``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application import failpoints
from cadenza.application.agent_service import AGENT_HEALTH_LEASE, AgentDuties
from cadenza.application.agents import AgentRegistry
from cadenza.application.config_apply import ConfigApplier
from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine, EngineSettings
from cadenza.application.external import ExternalWorkers
from cadenza.application.health import HealthChecker, http_check, mcp_check, provider_check
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
from cadenza.bootstrap.bus import open_bus
from cadenza.bootstrap.cache import Caching, open_caching
from cadenza.bootstrap.redaction import RedactionParts, build_redaction
from cadenza.bootstrap.retention import RetentionParts, build_retention
from cadenza.bootstrap.runtime_parts import build_ai_parts, build_executors
from cadenza.bootstrap.store import (
    assignment_store,
    keyring,
    leader_leases,
    open_store,
    store_ping,
    system_counts,
    workspace_secrets,
)
from cadenza.bootstrap.workspace_deletion import agents_removed, cancelling
from cadenza.domain.agent import AgentType
from cadenza.domain.limits import Limits
from cadenza.infrastructure.egress import Egress, EgressPolicy
from cadenza.infrastructure.ids import IdSource
from cadenza.infrastructure.memory_store import MEMORY_URL, MemoryStore
from cadenza.infrastructure.observability.gauges import SystemGauges
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.tracing import (
    LogContextTracer,
    Tracing,
    flush_traces,
    install_tracing,
)
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates, TemplateLimits
from cadenza.settings import Settings

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> float:
        return time.time()


def new_id() -> str:
    return uuid.uuid4().hex


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
        await self.gauges.aclose()
        await self.store.close()
        self.templates.close()
        await asyncio.to_thread(flush_traces)


def tune_gc() -> None:
    """For a long-running engine process (``cadenza worker``, ``cadenza run``): freeze what
    start-up allocated and collect the young generation less often. A batch creates 10^4-10^5
    short-lived objects; with the defaults every full collection walks the whole heap."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


async def build(
    settings: Settings,
    *,
    migrate: bool = True,
    run_worker: bool = True,
    role: ServiceRole = ServiceRole.ALL,
    bus: EventBus | None = None,
) -> Runtime:
    """The runtime of a process of ``role``; ``run_worker=False`` builds an engine that runs
    no tasks (a role that runs none never runs them). ``bus`` instead of the one
    ``settings.bus_url`` names (tests: runtimes sharing one bus, as processes share Redis or
    Kafka)."""
    clock = SystemClock()
    store, agent_repository, secret_store = await open_store(settings, clock, migrate=migrate)
    templates = JinjaTemplates(
        TemplateLimits(
            time_ms=settings.template_time_ms,
            max_steps=settings.template_max_steps,
            threads=settings.template_threads,
        )
    )
    checks = JsonSchemaChecks()
    limits = Limits(
        max_value_bytes=settings.max_value_bytes,
        max_nodes=settings.max_definition_nodes,
        max_subprocess_depth=settings.max_subprocess_depth,
    )
    # ---- shared cache and its invalidation over the bus (h-cache) -------------------------
    owns_bus = bus is None
    bus = open_bus(settings) if bus is None else bus
    caching = open_caching(settings, clock, bus)  # invalidation over the process's own bus
    definitions = Definitions(store, templates, checks, clock, limits, caching.definitions)
    ring = keyring(settings)  # seals workspace secrets and PII originals
    vault = workspace_secrets(settings, secret_store, clock, ring)
    redaction = build_redaction(settings, store, clock, ring, caching.announcer)
    egress = Egress(
        EgressPolicy(
            allow_private=settings.egress_allow_private,
            allowed_hosts=frozenset(settings.egress_allowed_hosts),
        )
    )
    metrics = Metrics()
    ai = build_ai_parts(
        settings, store, clock, metrics, vault, caching.announcer, caching.refresh_s
    )
    providers, quotas, gateway = ai.providers, ai.quotas, ai.gateway
    agents = AgentRegistry(
        agent_repository,
        clock,
        IdSource(),
        caching.refresh_s,
        caching.snapshots,
        caching.announcer.agents_changed,
    )
    external = ExternalWorkers(
        agents, IdSource(), assignment_store(store), clock, settings.assignment_poll_s
    )
    health = HealthChecker(
        agents,
        {
            AgentType.LLM: provider_check(providers),
            AgentType.MCP: mcp_check(gateway),
            AgentType.HTTP: http_check(egress),
        },
        clock,
        interval_s=settings.agent_health_interval_s,
    )
    executors = build_executors(settings, templates, checks, egress, ai, agents, external)
    failpoints.arm(settings.failpoints)
    owner = settings.worker_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    engine = Engine(
        store,
        definitions,
        templates,
        clock,
        IdSource(),
        executors,
        EngineSettings(
            owner=owner,
            incarnation=uuid.uuid4().hex[:8],
            lease_s=settings.lease_s,
            max_requeues=settings.max_requeues,
            capacity=settings.capacity,
            sweep_interval_s=settings.sweep_interval_s,
            run_worker=run_worker and role.runs_tasks,
            inline_pure=settings.engine_inline_pure,
            inline_steps=settings.engine_inline_steps,
        ),
        vault=vault,
    )
    engine.subscribe_task_types(metrics.on_task_types)
    engine.subscribe(metrics.on_events)
    engine.worker.on_start = lambda work: metrics.on_task_started(work.task_id, work.node.type)
    engine.availability.subscribe(metrics.on_store_status)
    install_tracing(settings.otlp_endpoint)
    trace_engine = settings.trace_engine
    if trace_engine is None:
        trace_engine = bool(settings.otlp_endpoint)
    if trace_engine:
        tracing = Tracing()
        engine.use_tracer(tracing)
        engine.subscribe(tracing.on_events)
    else:  # no spans nobody reads; task and instance ids still reach the logs
        engine.use_tracer(LogContextTracer())
    duties = AgentDuties(health, external, clock, settings.agent_health_interval_s)
    leadership = Leadership(
        leader_leases(store), AGENT_HEALTH_LEASE, owner, clock, settings.leader_lease_s, duties.run
    )
    Gauge(
        "cadenza_agent_health_leader",
        "1 while this process holds the agent-health lease and runs the agent health checks "
        "(summed over the agents services: 1)",
        registry=metrics.registry,
    ).set_function(lambda: float(leadership.leader))
    engine.use_bus(bus)
    relay = None if bus.local else Relay(store, bus, poll_s=settings.bus_relay_poll_s)
    if relay is not None:
        engine.subscribe(relay.notify)
        relay.on_pass = metrics.on_relay_pass
    return Runtime(
        settings,
        store,
        definitions,
        engine,
        egress,
        providers,
        gateway,
        agents,
        external,
        health,
        metrics,
        vault,
        templates,
        role,
        leadership,
        duties,
        store_ping(store),
        SystemGauges(metrics, system_counts(store, agent_repository), settings.metrics_refresh_s),
        bus=bus,
        relay=relay,
        owns_bus=owns_bus,
        caching=caching,
        quotas=quotas,
        retention=build_retention(
            settings,
            store,
            clock,
            metrics,
            owner,
            cancelling(engine),
            agents_removed(agents, caching),
        ),
        config=ai.config,
        applier=ai.applier,
        redaction=redaction,
    )
