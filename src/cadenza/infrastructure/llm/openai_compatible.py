"""OpenAI-compatible providers (OpenAI, DeepSeek, Qwen, Moonshot, Ollama, vLLM, ...) through
the official ``openai`` SDK over a shared httpx2 client.

The SDK's own retries are off (``max_retries=0``): ``ResilientProvider`` is the one retry
policy, so attempts, backoff and the breaker see every failure exactly once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx2
import openai
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
)
from openai.types.chat.completion_create_params import ResponseFormat

from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ProviderError,
    TokenSink,
    ToolCall,
    Usage,
)
from cadenza.infrastructure.llm.completion_json import chat_response
from cadenza.infrastructure.llm.sdk import (
    DEFAULT_POOL_SIZE,
    make_http_client,
    parse_arguments,
    status_error,
)


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    content = message.content or ""
    if message.role == "system":
        return {"role": "system", "content": content}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": content}
    if message.role == "assistant":
        calls: list[ChatCompletionMessageToolCallParam] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
        if calls:
            return {"role": "assistant", "content": message.content, "tool_calls": calls}
        return {"role": "assistant", "content": content}
    return {"role": "user", "content": content}


def _tool_params(request: ChatRequest) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.input_schema),
            },
        }
        for tool in request.tools
    ]


def _response_format(request: ChatRequest) -> ResponseFormat | openai.Omit:
    if request.response_schema is None:
        return openai.omit
    # strict=False: strict mode demands every property be required; the caller validates.
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": dict(request.response_schema),
            "strict": False,
        },
    }


def map_openai_error(provider: str, exc: Exception) -> ProviderError:
    """SDK exceptions as ProviderError: 429/5xx/timeouts/connection errors are retryable."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return status_error(provider, exc.status_code, exc.message, exc.response.headers)
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return ProviderError(f"{provider}: {exc.message}", retryable=True)
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", retryable=True)
    return ProviderError(f"{provider}: {type(exc).__name__}: {exc}", retryable=False)


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAICompatibleProvider:
    """A ``ModelProvider`` for any endpoint speaking the OpenAI chat-completions API.

    ``http_client`` is shared and owned by the caller; without one the provider makes its own
    with ``pool_size`` connections (``None`` = unbounded) and closes it in ``aclose``.
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str,
        default_model: str = "",
        http_client: httpx2.AsyncClient | None = None,
        pool_size: int | None = DEFAULT_POOL_SIZE,
    ) -> None:
        self.name = name
        self.default_model = default_model
        self._owns_http = http_client is None
        self._http = http_client or make_http_client(pool_size)
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, http_client=self._http, max_retries=0
        )

    async def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        """One model turn; ``on_token`` switches to streaming. Raises ProviderError."""
        started = time.perf_counter()
        try:
            if on_token is None:
                answer = await self._create(request)
                return chat_response(answer, self.name, time.perf_counter() - started)
            return await self._stream(request, on_token, started)
        except Exception as exc:
            raise map_openai_error(self.name, exc) from exc

    async def _create(self, request: ChatRequest) -> object:
        # The SDK's low-level ``post``: our request body is already plain JSON, so the typed
        # ``create`` would only re-walk it against its TypedDicts (about 0.8 ms per call, most
        # of the client CPU under load; see docs/providers.md), and the answer comes back as
        # decoded JSON (``cast_to=object``) read by ``completion_json`` rather than built into
        # pydantic models (another 0.6 ms). Errors, retries-off, headers and timeouts stay the
        # SDK's.
        body: dict[str, object] = {
            "model": request.model or self.default_model,
            "messages": [_message_param(m) for m in request.messages],
        }
        tools = _tool_params(request)
        if tools:
            body["tools"] = tools
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        response_format = _response_format(request)
        if response_format is not openai.omit:
            body["response_format"] = response_format
        headers = self._headers(request)
        return await self._client.post(
            "/chat/completions",
            cast_to=object,
            body=body,
            options={"headers": headers or {}, "timeout": request.timeout_s},
        )

    def _headers(self, request: ChatRequest) -> dict[str, str] | None:
        # The provider may deduplicate a retried turn; at worst the header is ignored.
        return {"Idempotency-Key": request.idempotency_key} if request.idempotency_key else None

    async def _stream(
        self, request: ChatRequest, on_token: TokenSink, started: float
    ) -> ChatResponse:
        tools = _tool_params(request)
        stream = await self._client.chat.completions.create(
            model=request.model or self.default_model,
            messages=[_message_param(m) for m in request.messages],
            tools=tools or openai.omit,
            temperature=request.temperature if request.temperature is not None else openai.omit,
            max_tokens=request.max_tokens if request.max_tokens is not None else openai.omit,
            response_format=_response_format(request),
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=self._headers(request),
            timeout=request.timeout_s,
        )
        text: list[str] = []
        partial: dict[int, _PartialCall] = {}
        usage, model, finish = Usage(), request.model or self.default_model, "stop"
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        on_token(choice.delta.content)
                    for delta in choice.delta.tool_calls or ():
                        # Deltas name their call by index; id and name arrive once, arguments
                        # in pieces.
                        slot = partial.setdefault(delta.index, _PartialCall())
                        slot.id = delta.id or slot.id
                        if delta.function is not None:
                            slot.name = delta.function.name or slot.name
                            slot.arguments.append(delta.function.arguments or "")
                    finish = choice.finish_reason or finish
        calls = tuple(
            ToolCall(p.id, p.name, parse_arguments(self.name, "".join(p.arguments)))
            for _, p in sorted(partial.items())
        )
        message = ChatMessage("assistant", "".join(text) if text or not calls else None, calls)
        return ChatResponse(
            message=message,
            usage=usage,
            model=model,
            finish_reason=finish,
            latency_s=time.perf_counter() - started,
            provider=self.name,
        )

    async def list_models(self) -> list[str]:
        """Model ids served by the endpoint (the health check). Raises ProviderError."""
        try:
            return [model.id async for model in self._client.models.list(timeout=10.0)]
        except Exception as exc:
            raise map_openai_error(self.name, exc) from exc

    async def aclose(self) -> None:
        """Close the SDK client, and the httpx2 client when this provider made it."""
        if self._owns_http:
            await self._http.aclose()
