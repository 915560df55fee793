"""The runtime of an engine process (``cadenza worker``, ``run``, ``serve``): the store, the
templates, the AI layer, egress, metrics, tracing, the executors and the engine, built from
settings by ``build`` and closed by ``Runtime.close``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application import failpoints
from cadenza.application.agents import AgentRegistry
from cadenza.application.definitions import Definitions
from cadenza.application.engine import Engine, EngineSettings
from cadenza.application.external import ExternalWorkers
from cadenza.application.health import HealthChecker, http_check, mcp_check, provider_check
from cadenza.application.nodes.agent import AgentExecutor
from cadenza.application.nodes.condition import ConditionExecutor
from cadenza.application.nodes.http import HttpExecutor
from cadenza.application.nodes.llm import LlmExecutor
from cadenza.application.nodes.task import TaskExecutor
from cadenza.application.nodes.tool import ToolExecutor
from cadenza.application.nodes.transform import TransformExecutor
from cadenza.application.ports import NodeExecutor
from cadenza.application.ports_ai import ToolGateway
from cadenza.application.ports_bus import EventBus
from cadenza.application.providers import Providers
from cadenza.application.relay import Relay
from cadenza.application.secrets import WorkspaceSecrets
from cadenza.bootstrap.ai import build_gateway, build_providers
from cadenza.bootstrap.bus import open_bus
from cadenza.bootstrap.store import open_store, workspace_secrets
from cadenza.domain.agent import AgentType
from cadenza.domain.limits import Limits
from cadenza.infrastructure.egress import Egress, EgressPolicy
from cadenza.infrastructure.ids import IdSource
from cadenza.infrastructure.memory_store import MEMORY_URL, MemoryStore
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
    _health_task: asyncio.Task[None] | None = None
    # the event bus (``open_bus``) and, when it crosses processes, the outbox relay
    bus: EventBus | None = None
    relay: Relay | None = None
    owns_bus: bool = True  # False when ``build`` was given a bus (tests share one)

    def database(self) -> AsyncEngine:
        """The SQL database of the tables beside the store (identity, queries): the API's."""
        if isinstance(self.store, MemoryStore):
            raise ValueError(f"{MEMORY_URL} runs the engine only: the API needs a SQL database")
        return self.store.engine

    async def start(self) -> None:
        """Start the engine and the agent health checks."""
        await self.engine.start()
        if self.relay is not None:
            await self.relay.start()
        self._health_task = asyncio.create_task(self.health.run(), name="agent-health")

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop everything; running tasks get ``grace_s`` to finish (see ``Engine.stop``)."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self.engine.stop(grace_s)
        if self.relay is not None:
            await self.relay.stop()
        if self.bus is not None and self.owns_bus:
            await self.bus.aclose()
        await self.gateway.aclose()
        await self.providers.aclose()
        await self.egress.aclose()
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
    bus: EventBus | None = None,
) -> Runtime:
    """The runtime of ``settings``; ``bus`` instead of the one ``settings.bus_url`` names
    (tests: runtimes sharing one bus, as processes share Redis or Kafka)."""
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
    definitions = Definitions(store, templates, checks, clock, limits)
    vault = workspace_secrets(settings, secret_store, clock)
    egress = Egress(
        EgressPolicy(
            allow_private=settings.egress_allow_private,
            allowed_hosts=frozenset(settings.egress_allowed_hosts),
        )
    )
    metrics = Metrics()
    providers = build_providers(settings, metrics.on_breaker_change)
    gateway = build_gateway(settings)
    agents = AgentRegistry(agent_repository, clock, IdSource())
    external = ExternalWorkers(agents, IdSource())
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
    executors: dict[str, NodeExecutor] = {
        "transform": TransformExecutor(templates),
        "condition": ConditionExecutor(templates),
        "http": HttpExecutor(egress, templates),
        "llm": LlmExecutor(providers, templates, checks),
        "agent": AgentExecutor(
            providers,
            gateway,
            templates,
            checks,
            approve_destructive=settings.approve_destructive_tools,
        ),
        "tool": ToolExecutor(
            gateway, templates, approve_destructive=settings.approve_destructive_tools
        ),
        "task": TaskExecutor(agents, providers, gateway, egress, external, templates),
    }
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
            run_worker=run_worker,
            inline_pure=settings.engine_inline_pure,
            inline_steps=settings.engine_inline_steps,
        ),
        vault=vault,
    )
    engine.subscribe(metrics.on_events)
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
    owns_bus = bus is None
    bus = open_bus(settings) if bus is None else bus
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
        bus=bus,
        relay=relay,
        owns_bus=owns_bus,
    )
