"""``task``: hand the work to a registered agent whose capabilities cover the node's ``requires``.

The registry picks the agent (load-balanced by ``strategy``); the call goes out by the agent's
type: a model chat (``llm``), a POST (``http``), a tool call (``mcp``) or an assignment for an
external worker (``worker``). With no agent available the task waits, journaling the reason
once, and fails with a clear "no available agent" error when its timeout comes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from cadenza.application.agents import AgentRegistry
from cadenza.application.config_apply import gateway_for
from cadenza.application.external import ExternalWorkers
from cadenza.application.nodes.llm import provider_failure, render_text
from cadenza.application.nodes.tool import find_tool, retry_allowed
from cadenza.application.ports import (
    EgressDenied,
    HttpClient,
    HttpRequest,
    TemplateError,
    Templates,
)
from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ProviderError,
    ToolError,
    ToolGateway,
)
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.application.providers import Providers
from cadenza.domain import agent as ag
from cadenza.domain.agent import Agent, AgentType
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.nodetypes import NODE_TYPES

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_INPUT = "{{ inputs }}"
POLL_S = 0.2  # how often a waiting task looks again (changes seen here wake it at once)
_MAX_REASONS = 10

TASK_NODE_TYPE = NODE_TYPES["task"]


def _strategies() -> dict[str, ag.Strategy]:
    return {s.name: s for s in (ag.LeastOutstanding(), ag.RoundRobin(), ag.Weighted())}


def _wait_budget(timeout_s: float) -> float:
    # Give up a little before the worker's own timeout, so that the task fails with our clear
    # message instead of a bare "timed out".
    return timeout_s - min(0.1 * timeout_s, 1.0)


class TaskExecutor:
    def __init__(
        self,
        registry: AgentRegistry,
        providers: Providers,
        gateway: ToolGateway,
        http_client: HttpClient,
        external: ExternalWorkers,
        templates: Templates,
    ) -> None:
        self._registry = registry
        self._providers = providers
        self._gateway = gateway
        self._http = http_client
        self._external = external
        self._templates = templates
        self._strategies = _strategies()  # shared, so rotation state spans tasks

    async def execute(self, call: NodeCall) -> NodeResult:
        cfg = call.node.config
        strategy = self._strategies.get(str(cfg.get("strategy", ag.LeastOutstanding.name)))
        if strategy is None:
            raise NodeFailure(f"task: unknown strategy {cfg.get('strategy')!r}", retryable=False)
        kind = cfg.get("agent_type")
        if kind is not None and kind not in set(AgentType):
            raise NodeFailure(f"task: unknown agent_type {kind!r}", retryable=False)
        agent_type = AgentType(kind) if isinstance(kind, str) else None
        try:
            payload = await self._templates.render(cfg.get("input", DEFAULT_INPUT), call.context)
        except TemplateError as exc:
            raise NodeFailure(f"task {call.node.id!r} input: {exc}", retryable=False) from exc
        instructions = None
        if "instructions" in cfg:
            instructions = await render_text(
                self._templates, cfg["instructions"], call, "instructions"
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout_s = call.node.timeout_s or DEFAULT_TIMEOUT_S
        agent = await self._acquire(call, strategy, agent_type, started + _wait_budget(timeout_s))
        began = loop.time()
        # Without a node timeout the wait and the call each get the default.
        budget = timeout_s - (began - started) if call.node.timeout_s else DEFAULT_TIMEOUT_S
        ok = False
        try:
            result, usage = await self._dispatch(agent, call, payload, instructions, budget)
            ok = True
        finally:
            self._registry.release(agent.id, ok, (loop.time() - began) * 1000)
        output: JSONObject = {"agent": agent.name, "type": str(agent.type), "result": result}
        return NodeResult(output, usage=usage)

    async def _acquire(
        self, call: NodeCall, strategy: ag.Strategy, agent_type: AgentType | None, deadline: float
    ) -> Agent:
        requires = call.node.requires
        loop = asyncio.get_running_loop()
        told = any(step.get("kind") == "waiting" for step in call.steps)
        ws = call.workspace_id
        while (agent := await self._registry.acquire(requires, strategy, agent_type, ws)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NodeFailure(await self._why(requires, agent_type, ws), retryable=False)
            if not told:
                told = True
                if call.record_step is not None:
                    reason = await self._why(requires, agent_type, ws)
                    await call.record_step({"kind": "waiting", "reason": reason})
            await self._registry.changed(min(POLL_S, remaining))
        return agent

    async def _why(
        self, requires: Sequence[str], agent_type: AgentType | None, workspace: str
    ) -> str:
        count, reasons = await self._registry.unavailable(requires, agent_type, workspace)
        what = f"{agent_type} agent" if agent_type else "agent"
        detail = f"{count} registered"
        if reasons:
            more = f"; +{len(reasons) - _MAX_REASONS} more" if len(reasons) > _MAX_REASONS else ""
            detail += f", reasons: {'; '.join(reasons[:_MAX_REASONS])}{more}"
        return f"no available {what} with capabilities [{', '.join(requires)}] ({detail})"

    async def _dispatch(
        self, agent: Agent, call: NodeCall, payload: JSON, instructions: str | None, budget_s: float
    ) -> tuple[JSON, JSONObject]:
        """The agent's answer and the usage to record."""
        if agent.type is AgentType.LLM:
            return await self._chat(agent, call, payload, instructions, budget_s)
        if agent.type is AgentType.HTTP:
            return await self._post(agent, call, payload, instructions, budget_s), {}
        if agent.type is AgentType.MCP:
            return await self._tool(agent, call, payload, budget_s), {}
        done = await self._external.dispatch(agent, call, payload, instructions, budget_s)
        return done.output, dict(done.usage)

    async def _chat(
        self, agent: Agent, call: NodeCall, payload: JSON, instructions: str | None, budget_s: float
    ) -> tuple[JSON, JSONObject]:
        provider, model = self._providers.resolve(
            agent.config.get("provider"), agent.config.get("model"), call.workspace_id
        )
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        messages = [ChatMessage("system", instructions)] if instructions else []
        messages.append(ChatMessage("user", text))
        request = ChatRequest(
            model=model,
            messages=tuple(messages),
            idempotency_key=call.idempotency_key,
            timeout_s=budget_s,
        )
        try:
            response = await self._providers.chat(provider, request, call.workspace_id)
        except ProviderError as exc:
            raise provider_failure(exc) from exc
        return response.message.content or "", self._providers.usage(response, provider)

    async def _post(
        self, agent: Agent, call: NodeCall, payload: JSON, instructions: str | None, budget_s: float
    ) -> JSON:
        body: JSONObject = {"input": payload, "idempotency_key": call.idempotency_key}
        if instructions:
            body["instructions"] = instructions
        headers = {"Content-Type": "application/json", "Idempotency-Key": call.idempotency_key}
        url = str(agent.config["url"])
        data = json.dumps(body, ensure_ascii=False).encode()
        where = f"http agent {agent.name!r}"
        try:
            response = await self._http.send(HttpRequest("POST", url, headers, data, budget_s))
        except EgressDenied as exc:
            raise NodeFailure(f"{where}: egress guard refused: {exc}", retryable=False) from exc
        except TimeoutError as exc:
            raise NodeFailure(f"{where}: timed out after {budget_s:g}s", retryable=True) from exc
        except OSError as exc:
            raise NodeFailure(f"{where}: {exc}", retryable=True) from exc
        text = response.body.decode("utf-8", errors="replace")
        if not 200 <= response.status < 300:
            retryable = response.status in (408, 429) or response.status >= 500
            raise NodeFailure(
                f"{where} returned status {response.status}: {text[:200]}", retryable=retryable
            )
        media = {k.lower(): v for k, v in response.headers.items()}.get("content-type", "")
        if "json" in media:
            try:
                parsed: JSON = json.loads(text)
            except ValueError:
                return text
            return parsed
        return text

    async def _tool(self, agent: Agent, call: NodeCall, payload: JSON, budget_s: float) -> JSON:
        server = str(agent.config["server"])
        name = agent.config.get("tool")
        tool = name if isinstance(name, str) else await self._pick_tool(server, call)
        gateway = gateway_for(self._gateway, call.workspace_id)
        retryable = retry_allowed(await find_tool(gateway, server, tool))
        try:
            result = await gateway.call_tool(
                server,
                tool,
                {"input": payload},
                idempotency_key=call.idempotency_key,
                timeout_s=budget_s,
            )
        except ToolError as exc:
            raise NodeFailure(
                f"{server}/{tool}: {exc}", retryable=exc.retryable and retryable
            ) from exc
        if result.is_error:
            raise NodeFailure(
                f"{server}/{tool} returned an error: {result.content}", retryable=retryable
            )
        return result.structured if result.structured is not None else result.content

    async def _pick_tool(self, server: str, call: NodeCall) -> str:
        """An MCP agent without a ``tool``: the required capability that names one of the
        server's tools, else the server's only tool."""
        try:
            gateway = gateway_for(self._gateway, call.workspace_id)
            names = [t.name for t in await gateway.list_tools(server)]
        except ToolError as exc:
            raise NodeFailure(f"tools of {server!r}: {exc}", retryable=exc.retryable) from exc
        for capability in call.node.requires:
            if capability in names:
                return capability
        if len(names) == 1:
            return names[0]
        raise NodeFailure(
            f"mcp agent on {server!r} has no `tool` and none of [{', '.join(call.node.requires)}]"
            f" names one of its {len(names)} tools",
            retryable=False,
        )
