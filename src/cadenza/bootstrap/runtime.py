"""The runtime of a Cadenza process (``cadenza worker``, ``agents``, ``run``, ``serve``): the
store, the templates, the AI layer, egress, metrics, tracing, the executors, the engine and the
agent duties, built from settings by ``build``. The ``Runtime`` it returns (``lifecycle``)
starts what the process's role runs (``ServiceRole``) and closes everything."""

from __future__ import annotations

import gc
import logging
import os
import time
import uuid

from prometheus_client import Gauge

from cadenza.application import failpoints
from cadenza.application.agent_service import AGENT_HEALTH_LEASE, AgentDuties
from cadenza.application.agents import AgentRegistry
from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine, EngineSettings
from cadenza.application.external import ExternalWorkers
from cadenza.application.health import HealthChecker, http_check, mcp_check, provider_check
from cadenza.application.leadership import Leadership
from cadenza.application.ports_bus import EventBus
from cadenza.application.readiness import ServiceRole
from cadenza.application.relay import Relay
from cadenza.bootstrap.bus import open_bus
from cadenza.bootstrap.cache import open_caching
from cadenza.bootstrap.lifecycle import Runtime
from cadenza.bootstrap.redaction import build_redaction
from cadenza.bootstrap.retention import build_retention
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
from cadenza.bootstrap.workspace_deletion import cancelling, workspace_removed
from cadenza.domain.agent import AgentType
from cadenza.domain.limits import Limits
from cadenza.infrastructure.egress import Egress, EgressPolicy
from cadenza.infrastructure.ids import IdSource
from cadenza.infrastructure.observability.gauges import SystemGauges
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.tracer_provider import install_tracing
from cadenza.infrastructure.observability.tracing import LogContextTracer, Tracing
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates, TemplateLimits
from cadenza.settings import Settings

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> float:
        return time.time()


def new_id() -> str:
    return uuid.uuid4().hex


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
            max_crashes=settings.task_max_crashes,
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
    tracing = None
    if trace_engine:
        tracing = traced = Tracing()
        engine.use_tracer(tracing)
        engine.subscribe(tracing.on_events)
        Gauge(
            "cadenza_trace_open_instance_spans",
            "instance spans this process opened and has not ended yet (the instance runs, or "
            "its end has not reached this process)",
            registry=metrics.registry,
        ).set_function(lambda: float(traced.open_count))
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
    if tracing is not None:  # a worker hears of instances other processes end on the bus
        engine.sweeper.heard.append(tracing.ended_on_bus)
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
            workspace_removed(agents, caching, ai.config),
        ),
        config=ai.config,
        applier=ai.applier,
        redaction=redaction,
        tracing=tracing,
    )
