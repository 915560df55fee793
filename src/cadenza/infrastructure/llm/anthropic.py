"""Anthropic's Messages API through the official ``anthropic`` SDK over the shared httpx2 client.

As for the OpenAI-compatible provider, the SDK's retries are off (``max_retries=0``) so that
``ResilientProvider`` is the only retry policy. ``ChatRequest.temperature`` is not sent: the
Messages API of the 2.x SDK has no sampling-temperature parameter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

import anthropic
import httpx2
from anthropic.types import (
    AssistantMessageParam,
    ContentBlockParam,
    Message,
    MessageParam,
    OutputConfigParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)

from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ProviderError,
    TokenSink,
    ToolCall,
    Usage,
)
from cadenza.domain.json import JSONObject, is_json_object
from cadenza.infrastructure.llm.sdk import (
    DEFAULT_POOL_SIZE,
    make_http_client,
    parse_arguments,
    status_error,
)

DEFAULT_MAX_TOKENS = 4096  # the Messages API requires max_tokens
# Anthropic's stop reasons in the OpenAI vocabulary, so callers see one set of finish reasons.
_FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def _blocks(message: ChatMessage) -> list[ContentBlockParam]:
    if message.role == "tool":
        result = ToolResultBlockParam(
            type="tool_result",
            tool_use_id=message.tool_call_id or "",
            content=message.content or "",
        )
        return [result]
    blocks: list[ContentBlockParam] = []
    if message.content:
        blocks.append(TextBlockParam(type="text", text=message.content))
    for call in message.tool_calls:
        arguments: dict[str, object] = dict(call.arguments)
        blocks.append(
            ToolUseBlockParam(type="tool_use", id=call.id, name=call.name, input=arguments)
        )
    return blocks


def _messages(request: ChatRequest) -> tuple[str, list[MessageParam]]:
    """System text apart; tool results become user turns; consecutive same-role turns merge,
    since the API wants alternating roles and all results of one turn in one user message."""
    system = "\n\n".join(m.content or "" for m in request.messages if m.role == "system")
    turns: list[tuple[str, list[ContentBlockParam]]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(_blocks(message))
        else:
            turns.append((role, _blocks(message)))
    return system, [
        AssistantMessageParam(role="assistant", content=blocks)
        if role == "assistant"
        else UserMessageParam(role="user", content=blocks)
        for role, blocks in turns
    ]


def _json_object(provider: str, value: dict[str, object]) -> JSONObject:
    # The SDK types tool input as dict[str, object]; it was parsed from JSON, so it is JSON.
    if not is_json_object(value):
        raise ProviderError(f"{provider}: tool input is not a JSON object", retryable=False)
    return cast(JSONObject, value)


def _tools(request: ChatRequest) -> list[ToolParam]:
    return [
        {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
        for t in request.tools
    ]


def map_anthropic_error(provider: str, exc: Exception) -> ProviderError:
    """SDK exceptions as ProviderError: 429/5xx (529 overloaded)/timeouts are retryable."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, anthropic.APIStatusError):
        return status_error(provider, exc.status_code, exc.message, exc.response.headers)
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return ProviderError(f"{provider}: {exc.message}", retryable=True)
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", retryable=True)
    return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", retryable=False)


@dataclass
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


class AnthropicProvider:
    """A ``ModelProvider`` for Anthropic's Messages API (``base_url`` without ``/v1``).

    ``http_client`` is shared and owned by the caller; without one the provider makes its own.
    """

    def __init__(
        self,
        name: str,
        *,
        api_key: str,
        base_url: str | None = None,
        default_model: str = "",
        http_client: httpx2.AsyncClient | None = None,
        pool_size: int | None = DEFAULT_POOL_SIZE,
    ) -> None:
        self.name = name
        self.default_model = default_model
        self._owns_http = http_client is None
        self._http = http_client or make_http_client(pool_size)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, http_client=self._http, max_retries=0
        )

    async def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        """One model turn; ``on_token`` switches to streaming. Raises ProviderError."""
        started = time.perf_counter()
        system, messages = _messages(request)
        output: OutputConfigParam | anthropic.Omit = anthropic.omit
        if request.response_schema is not None:
            output = {"format": {"type": "json_schema", "schema": dict(request.response_schema)}}
        headers = {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else None
        model = request.model or self.default_model
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        tools = _tools(request) or anthropic.omit
        try:
            if on_token is None:
                answer = await self._client.messages.create(
                    model=model,
                    max_tokens=max_tokens,
                    messages=messages,
                    system=system or anthropic.omit,
                    tools=tools,
                    output_config=output,
                    extra_headers=headers,
                    timeout=request.timeout_s,
                )
                return self._response(answer, started)
            stream = await self._client.messages.create(
                model=model,
                max_tokens=max_tokens,
                messages=messages,
                system=system or anthropic.omit,
                tools=tools,
                output_config=output,
                stream=True,
                extra_headers=headers,
                timeout=request.timeout_s,
            )
            return await self._collect(stream, on_token, model, started)
        except Exception as exc:
            raise map_anthropic_error(self.name, exc) from exc

    def _response(self, answer: Message, started: float) -> ChatResponse:
        text = [block.text for block in answer.content if block.type == "text"]
        calls = tuple(
            ToolCall(block.id, block.name, _json_object(self.name, block.input))
            for block in answer.content
            if block.type == "tool_use"
        )
        stop = answer.stop_reason or "end_turn"
        return ChatResponse(
            message=ChatMessage("assistant", "".join(text) if text else None, calls),
            usage=Usage(answer.usage.input_tokens, answer.usage.output_tokens),
            model=answer.model,
            finish_reason=_FINISH.get(stop, stop),
            latency_s=time.perf_counter() - started,
            provider=self.name,
        )

    async def _collect(
        self,
        stream: anthropic.AsyncStream[anthropic.types.RawMessageStreamEvent],
        on_token: TokenSink,
        model: str,
        started: float,
    ) -> ChatResponse:
        blocks: dict[int, _Block] = {}
        prompt_tokens = completion_tokens = 0
        stop = "end_turn"
        async with stream:
            async for event in stream:
                if event.type == "message_start":
                    model = event.message.model or model
                    prompt_tokens = event.message.usage.input_tokens
                    completion_tokens = event.message.usage.output_tokens
                elif event.type == "content_block_start":
                    block = event.content_block
                    if block.type == "tool_use":
                        blocks[event.index] = _Block("tool_use", block.id, block.name)
                    else:
                        blocks[event.index] = _Block(block.type)
                elif event.type == "content_block_delta":
                    slot = blocks.setdefault(event.index, _Block("text"))
                    if event.delta.type == "text_delta":
                        slot.parts.append(event.delta.text)
                        on_token(event.delta.text)
                    elif event.delta.type == "input_json_delta":
                        slot.parts.append(event.delta.partial_json)
                elif event.type == "message_delta":
                    stop = event.delta.stop_reason or stop
                    # message_delta carries the cumulative output count.
                    completion_tokens = event.usage.output_tokens
        ordered = [blocks[i] for i in sorted(blocks)]
        text = "".join("".join(b.parts) for b in ordered if b.kind == "text")
        calls = tuple(
            ToolCall(b.id, b.name, parse_arguments(self.name, "".join(b.parts)))
            for b in ordered
            if b.kind == "tool_use"
        )
        return ChatResponse(
            message=ChatMessage("assistant", text if text or not calls else None, calls),
            usage=Usage(prompt_tokens, completion_tokens),
            model=model,
            finish_reason=_FINISH.get(stop, stop),
            latency_s=time.perf_counter() - started,
            provider=self.name,
        )

    async def list_models(self) -> list[str]:
        """Model ids the account can use (the health check). Raises ProviderError."""
        try:
            return [model.id async for model in self._client.models.list(timeout=10.0)]
        except Exception as exc:
            raise map_anthropic_error(self.name, exc) from exc

    async def aclose(self) -> None:
        """Close the httpx2 client when this provider made it."""
        if self._owns_http:
            await self._http.aclose()
