"""The agent loop against scripted ports: turns, tool calls, replay of journaled steps."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cadenza.application.nodes.agent import AgentExecutor
from cadenza.application.nodes.llm import LlmExecutor
from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ToolCall,
    ToolInfo,
    ToolResult,
    Usage,
)
from cadenza.application.ports_nodes import NodeCall, NodeFailure
from cadenza.application.providers import Price, Providers
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates


class ScriptedProvider:
    name = "scripted"

    def __init__(self, answers: list[ChatMessage]) -> None:
        self.answers = answers
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest, on_token: object = None) -> ChatResponse:
        self.requests.append(request)
        message = self.answers[len(self.requests) - 1]
        return ChatResponse(message, Usage(10, 5), request.model, "stop", 0.01, self.name)

    async def list_models(self) -> list[str]:
        return ["m"]

    async def aclose(self) -> None:
        return None


class ScriptedGateway:
    def __init__(self, annotations: JSONObject | None = None) -> None:
        self.calls: list[tuple[str, JSONObject, str]] = []
        self.annotations = annotations or {"readOnlyHint": True}

    async def list_tools(self, server: str) -> list[ToolInfo]:
        schema: JSONObject = {"type": "object", "properties": {"q": {"type": "string"}}}
        return [ToolInfo(server, "lookup", "look it up", schema, self.annotations, "h")]

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30,
    ) -> ToolResult:
        self.calls.append((name, arguments, idempotency_key))
        return ToolResult(f"result for {arguments.get('q')}")

    async def ping(self, server: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _call(
    config: JSONObject, steps: tuple[JSONObject, ...] = (), recorded: list[JSONObject] | None = None
) -> NodeCall:
    async def record(step: JSONObject) -> None:
        if recorded is not None:
            recorded.append(step)

    context: Mapping[str, object] = {"inputs": {"question": "why"}, "nodes": {}}
    return NodeCall("i1", "t1", Node("a", "agent", config), 1, "i1:a:0:1", context, steps, record)


AGENT: JSONObject = {
    "instructions": "Answer {{ inputs.question }}",
    "tools": [{"server": "kb"}],
    "max_steps": 3,
}


def _agent(provider: ScriptedProvider, gateway: ScriptedGateway) -> AgentExecutor:
    providers = Providers({"default": provider}, "default", prices={"*": Price(1.0, 2.0)})
    return AgentExecutor(providers, gateway, JinjaTemplates(), JsonSchemaChecks())


def _tool_turn() -> ChatMessage:
    return ChatMessage("assistant", None, (ToolCall("c1", "kb__lookup", {"q": "why"}),))


async def test_agent_calls_tools_then_answers_and_journals_every_step() -> None:
    provider = ScriptedProvider([_tool_turn(), ChatMessage("assistant", "because")])
    gateway = ScriptedGateway()
    recorded: list[JSONObject] = []
    result = await _agent(provider, gateway).execute(_call(AGENT, recorded=recorded))
    assert result.output == {"text": "because", "tool_calls": 1}
    assert [s["kind"] for s in recorded] == ["model", "tool", "model"]
    assert gateway.calls == [("lookup", {"q": "why"}, "i1:a:0:1:c1")]
    assert result.usage["prompt_tokens"] == 20
    assert result.usage["cost"] == pytest.approx((20 * 1.0 + 10 * 2.0) / 1000)
    tool_message = provider.requests[1].messages[-1]
    assert tool_message.role == "tool"
    assert "result for why" in (tool_message.content or "")


async def test_resumed_agent_does_not_repeat_journaled_model_or_tool_calls() -> None:
    first = ScriptedProvider([_tool_turn(), ChatMessage("assistant", "because")])
    gateway = ScriptedGateway()
    recorded: list[JSONObject] = []
    await _agent(first, gateway).execute(_call(AGENT, recorded=recorded))
    # crash after the tool call was journaled: the re-run gets those steps back
    resumed = ScriptedProvider([ChatMessage("assistant", "because, resumed")])
    gateway2 = ScriptedGateway()
    result = await _agent(resumed, gateway2).execute(_call(AGENT, steps=tuple(recorded[:2])))
    assert result.output == {"text": "because, resumed", "tool_calls": 1}
    assert len(resumed.requests) == 1  # only the turn after the journaled ones
    assert gateway2.calls == []  # the tool is not called again


async def test_agent_stops_at_max_steps() -> None:
    provider = ScriptedProvider([_tool_turn()] * 3)
    with pytest.raises(NodeFailure, match="max_steps=3"):
        await _agent(provider, ScriptedGateway()).execute(_call(AGENT))


async def test_llm_structured_output_is_validated() -> None:
    schema: JSON = {
        "type": "object",
        "properties": {"label": {"enum": ["bug", "other"]}},
        "required": ["label"],
    }
    config: JSONObject = {"prompt": "Classify {{ inputs.question }}", "output_schema": schema}
    good = ScriptedProvider([ChatMessage("assistant", '{"label": "bug"}')])
    providers = Providers({"default": good}, "default")
    llm = LlmExecutor(providers, JinjaTemplates(), JsonSchemaChecks())
    result = await llm.execute(_call(config))
    assert isinstance(result.output, dict)
    assert result.output["json"] == {"label": "bug"}
    assert good.requests[0].messages[-1].content == "Classify why"
    bad = ScriptedProvider([ChatMessage("assistant", '{"label": "cat"}')])
    llm = LlmExecutor(Providers({"default": bad}, "default"), JinjaTemplates(), JsonSchemaChecks())
    with pytest.raises(NodeFailure, match="does not match output_schema") as info:
        await llm.execute(_call(config))
    assert info.value.retryable


async def test_unknown_provider_is_a_clear_non_retryable_failure() -> None:
    llm = LlmExecutor(Providers({}, "default"), JinjaTemplates(), JsonSchemaChecks())
    with pytest.raises(NodeFailure, match="no model provider named 'default'") as info:
        await llm.execute(_call({"prompt": "x"}))
    assert not info.value.retryable
