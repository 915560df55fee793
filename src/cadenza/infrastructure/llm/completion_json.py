"""An OpenAI chat completion read from its JSON, without building the SDK's models.

The SDK turns every answer into pydantic models (``ChatCompletion``): about 0.6 ms of CPU per
call, most of a model call's client cost once the request side is plain JSON (W3 makes 900
calls). Here the few fields a turn needs are read from the decoded JSON, and every field is
checked, since the answer comes from outside: a malformed answer is a ``ProviderError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from cadenza.application.ports_ai import (
    ChatMessage,
    ChatResponse,
    ProviderError,
    ToolCall,
    Usage,
)
from cadenza.infrastructure.llm.sdk import parse_arguments


def _object(value: object, what: str, provider: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ProviderError(f"{provider}: {what} is not an object", retryable=False)
    return value


def _text(value: object, what: str, provider: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ProviderError(f"{provider}: {what} is not a string", retryable=False)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _calls(message: Mapping[str, object], provider: str) -> tuple[ToolCall, ...]:
    raw = message.get("tool_calls") or []
    if not isinstance(raw, list):
        raise ProviderError(f"{provider}: tool_calls is not a list", retryable=False)
    calls = []
    for item in raw:
        call = _object(item, "a tool call", provider)
        if call.get("type", "function") != "function":
            continue
        function = _object(call.get("function"), "a tool call's function", provider)
        name = _text(function.get("name"), "a tool call's name", provider) or ""
        arguments = _text(function.get("arguments"), "a tool call's arguments", provider) or ""
        call_id = _text(call.get("id"), "a tool call's id", provider) or ""
        calls.append(ToolCall(call_id, name, parse_arguments(provider, arguments)))
    return tuple(calls)


def chat_response(data: object, provider: str, latency_s: float) -> ChatResponse:
    """The turn an OpenAI chat-completion answer holds."""
    completion = _object(data, "the answer", provider)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ProviderError(f"{provider}: answer without choices", retryable=True)
    choice = _object(choices[0], "a choice", provider)
    message = _object(choice.get("message"), "the message", provider)
    usage = completion.get("usage")
    used = (
        Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        if isinstance(usage, Mapping)
        else Usage()
    )
    return ChatResponse(
        message=ChatMessage(
            "assistant",
            _text(message.get("content"), "the message content", provider),
            _calls(message, provider),
        ),
        usage=used,
        model=_text(completion.get("model"), "the model", provider) or "",
        finish_reason=_text(choice.get("finish_reason"), "the finish reason", provider) or "",
        latency_s=latency_s,
        provider=provider,
    )
