"""``agent``: a model with MCP tools in a bounded loop, every turn and tool call journaled.

A re-run after a crash replays the journaled steps instead of calling the model or the tool
again, so only the call in flight at the crash can happen twice (with the same idempotency key).
"""

from __future__ import annotations

import json
import re

from cadenza.application.config_apply import gateway_for
from cadenza.application.definitions import SchemaChecker
from cadenza.application.failpoints import crash_point
from cadenza.application.nodes.llm import provider_failure, render_text, structured
from cadenza.application.nodes.tool import is_destructive, retry_allowed
from cadenza.application.ports import Templates
from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ModelProvider,
    ProviderError,
    ToolCall,
    ToolError,
    ToolGateway,
    ToolInfo,
    ToolSpec,
)
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.application.providers import Providers
from cadenza.application.usage import add_usage
from cadenza.domain.json import JSON, JSONObject

DEFAULT_MAX_STEPS = 8
_SAFE = re.compile(r"[^a-zA-Z0-9_-]")


def tool_key(info: ToolInfo) -> str:
    """A function name every provider accepts, unique across servers."""
    return _SAFE.sub("_", f"{info.server}__{info.name}")[:64]


def _message_to_step(message: ChatMessage) -> JSONObject:
    calls: list[JSON] = [
        {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
    ]
    return {"content": message.content, "tool_calls": calls}


def _message_from_step(step: JSONObject) -> ChatMessage:
    raw_calls = step.get("tool_calls")
    calls = []
    for c in raw_calls if isinstance(raw_calls, list) else []:
        if isinstance(c, dict) and isinstance(c.get("arguments"), dict):
            args = c["arguments"]
            assert isinstance(args, dict)
            calls.append(ToolCall(str(c.get("id")), str(c.get("name")), args))
    content = step.get("content")
    return ChatMessage("assistant", content if isinstance(content, str) else None, tuple(calls))


class AgentExecutor:
    def __init__(
        self,
        providers: Providers,
        gateway: ToolGateway,
        templates: Templates,
        checker: SchemaChecker,
        *,
        approve_destructive: bool = False,
    ) -> None:
        self._providers = providers
        self._gateway = gateway
        self._templates = templates
        self._checker = checker
        # an agent cannot stop for a human mid-loop: with approvals required it gets no
        # destructive tools at all (a `tool` node after an approval node is the way)
        self._approve_destructive = approve_destructive

    async def _tools(self, call: NodeCall) -> dict[str, ToolInfo]:
        out: dict[str, ToolInfo] = {}
        sets = call.node.config.get("tools", [])
        for toolset in sets if isinstance(sets, list) else []:
            if not isinstance(toolset, dict):
                continue
            server = str(toolset.get("server"))
            names = toolset.get("names")
            try:
                infos = await gateway_for(self._gateway, call.workspace_id).list_tools(server)
            except ToolError as exc:
                raise NodeFailure(
                    f"agent tools of {server!r}: {exc}", retryable=exc.retryable
                ) from exc
            for info in infos:
                if self._approve_destructive and is_destructive(info):
                    continue
                if not isinstance(names, list) or info.name in names:
                    out[tool_key(info)] = info
        return out

    async def execute(self, call: NodeCall) -> NodeResult:
        cfg = call.node.config
        provider, model = self._providers.resolve(
            cfg.get("provider"), cfg.get("model"), call.workspace_id
        )
        tools = await self._tools(call)
        specs = tuple(ToolSpec(k, t.description, t.input_schema) for k, t in tools.items())
        instructions = await render_text(self._templates, cfg["instructions"], call, "instructions")
        task = await render_text(
            self._templates, cfg.get("input", "{{ inputs | tojson }}"), call, "input"
        )
        messages = [ChatMessage("system", instructions), ChatMessage("user", task)]
        max_steps = cfg.get("max_steps", DEFAULT_MAX_STEPS)
        replay = list(call.steps)
        usage: JSONObject = {}
        tool_calls = 0
        for _turn in range(max_steps if isinstance(max_steps, int) else DEFAULT_MAX_STEPS):
            step = replay.pop(0) if replay and replay[0].get("kind") == "model" else None
            fresh = step is None
            if step is None:
                step = await self._model_turn(call, provider, model, tuple(messages), specs)
            turn_usage = step.get("usage")
            usage = add_usage(usage, turn_usage if isinstance(turn_usage, dict) else {})
            message = _message_from_step(step)
            messages.append(message)
            if not message.tool_calls:
                return NodeResult(self._output(call, message, tool_calls), usage=usage)
            if fresh:  # this run's model turn is journaled; its tool calls are not made yet
                crash_point("mid-agent-turn")
            for tc in message.tool_calls:
                done = replay.pop(0) if replay and replay[0].get("id") == tc.id else None
                result = done or await self._tool_call(call, tools, tc)
                tool_calls += 1
                messages.append(
                    ChatMessage("tool", json.dumps(result.get("result")), tool_call_id=tc.id)
                )
        raise NodeFailure(f"agent did not finish within max_steps={max_steps}", retryable=False)

    def _output(self, call: NodeCall, message: ChatMessage, tool_calls: int) -> JSONObject:
        text = message.content or ""
        out: JSONObject = {"text": text, "tool_calls": tool_calls}
        schema = call.node.config.get("output_schema")
        if isinstance(schema, dict):
            out["json"] = structured(text, schema, self._checker)
        return out

    async def _model_turn(
        self,
        call: NodeCall,
        provider: ModelProvider,
        model: str,
        messages: tuple[ChatMessage, ...],
        specs: tuple[ToolSpec, ...],
    ) -> JSONObject:
        request = ChatRequest(
            model=model,
            messages=messages,
            tools=specs,
            idempotency_key=f"{call.idempotency_key}:turn{len(messages)}",
            timeout_s=call.node.timeout_s or 30.0,
        )
        try:
            response = await self._providers.chat(provider, request, call.workspace_id)
        except ProviderError as exc:
            raise provider_failure(exc) from exc
        step: JSONObject = {"kind": "model", **_message_to_step(response.message)}
        step["usage"] = self._providers.usage(response, provider)
        if call.record_step is not None:
            await call.record_step(step)
        return step

    async def _tool_call(
        self, call: NodeCall, tools: dict[str, ToolInfo], tc: ToolCall
    ) -> JSONObject:
        info = tools.get(tc.name)
        if info is None:
            result: JSON = {"error": f"unknown tool {tc.name!r}"}
        else:
            try:
                answer = await gateway_for(self._gateway, call.workspace_id).call_tool(
                    info.server,
                    info.name,
                    tc.arguments,
                    idempotency_key=f"{call.idempotency_key}:{tc.id}",
                    timeout_s=call.node.timeout_s or 30.0,
                )
                result = {"content": answer.content, "is_error": answer.is_error}
            except ToolError as exc:
                if exc.retryable and retry_allowed(info):
                    raise NodeFailure(
                        f"tool {info.server}/{info.name}: {exc}", retryable=True
                    ) from exc
                result = {"error": str(exc)}  # the model sees the failure and may recover
        step: JSONObject = {"kind": "tool", "id": tc.id, "name": tc.name, "result": result}
        if call.record_step is not None:
            await call.record_step(step)
        return step
