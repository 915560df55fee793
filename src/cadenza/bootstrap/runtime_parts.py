"""Parts of a process's runtime that ``runtime.build`` composes: the AI layer (providers under
the workspace quotas, the MCP gateway with the stored servers, the stored runtime
configuration and its applier) and the node executors."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.application.agents import AgentRegistry
from cadenza.application.config_apply import ConfigApplier
from cadenza.application.external import ExternalWorkers
from cadenza.application.invalidation import Announcer
from cadenza.application.nodes.agent import AgentExecutor
from cadenza.application.nodes.condition import ConditionExecutor
from cadenza.application.nodes.http import HttpExecutor
from cadenza.application.nodes.llm import LlmExecutor
from cadenza.application.nodes.task import TaskExecutor
from cadenza.application.nodes.tool import ToolExecutor
from cadenza.application.nodes.transform import TransformExecutor
from cadenza.application.ports import Clock
from cadenza.application.ports_ai import ToolGateway
from cadenza.application.ports_nodes import NodeExecutor
from cadenza.application.providers import Providers
from cadenza.application.quotas import Quotas
from cadenza.application.runtime_config import RuntimeConfig
from cadenza.application.secrets import WorkspaceSecrets
from cadenza.bootstrap.ai import build_gateway, build_providers
from cadenza.bootstrap.config import UrlPolicy, config_applier, runtime_config
from cadenza.bootstrap.mcp_live import LiveGateway
from cadenza.bootstrap.quotas import build_quotas
from cadenza.bootstrap.store import approval_store, config_store
from cadenza.infrastructure.egress import Egress
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.quota_metrics import quota_refusals
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates
from cadenza.settings import Settings


@dataclass(frozen=True)
class AiParts:
    providers: Providers
    quotas: Quotas
    gateway: ToolGateway
    config: RuntimeConfig
    applier: ConfigApplier


def build_ai_parts(
    settings: Settings,
    store: SqlStore | MemoryStore,
    clock: Clock,
    metrics: Metrics,
    vault: WorkspaceSecrets,
    announcer: Announcer,
    refresh_s: float,
) -> AiParts:
    providers = build_providers(settings, metrics.on_breaker_change)
    quotas = build_quotas(settings, store, clock)
    quotas.on_refusal = quota_refusals(metrics.registry)
    providers.budget = quotas  # every model turn is checked and counted per workspace
    quotas.announce = announcer.quotas_changed
    gateway: ToolGateway = build_gateway(settings, metrics.registry, approval_store(store))
    live = None
    if not settings.mcp_proxy_url:  # stored MCP servers are added to this process's sessions
        urls = UrlPolicy(settings.config_allowed_hosts)
        live = LiveGateway(gateway, settings, metrics.registry, approval_store(store), urls.written)
        gateway = live
    config = runtime_config(
        settings, config_store(store), vault.cipher, clock, announcer.config_changed
    )
    applier = config_applier(
        settings, config, providers, live, refresh_s, metrics.on_breaker_change
    )
    return AiParts(providers, quotas, gateway, config, applier)


def build_executors(
    settings: Settings,
    templates: JinjaTemplates,
    checks: JsonSchemaChecks,
    egress: Egress,
    ai: AiParts,
    agents: AgentRegistry,
    external: ExternalWorkers,
) -> dict[str, NodeExecutor]:
    """The executors of the node types that run as tasks (control nodes are the engine's)."""
    approve = settings.approve_destructive_tools
    providers, gateway = ai.providers, ai.gateway
    return {
        "transform": TransformExecutor(templates),
        "condition": ConditionExecutor(templates),
        "http": HttpExecutor(egress, templates),
        "llm": LlmExecutor(providers, templates, checks),
        "agent": AgentExecutor(providers, gateway, templates, checks, approve_destructive=approve),
        "tool": ToolExecutor(gateway, templates, approve_destructive=approve),
        "task": TaskExecutor(agents, providers, gateway, egress, external, templates),
    }
