"""Model providers over real HTTP on 127.0.0.1: the OpenAI-compatible and Anthropic SDK paths
against the fake servers, the resilience policy (Retry-After, 5xx bursts, hangs, 4xx, the
circuit breaker), and the deterministic offline provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import MAGIC_TOOL_WORD, FakeOpenAIServer

from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ProviderError,
    ToolSpec,
)
from cadenza.infrastructure.llm.anthropic import AnthropicProvider
from cadenza.infrastructure.llm.offline import OfflineProvider
from cadenza.infrastructure.llm.openai_compatible import OpenAICompatibleProvider
from cadenza.infrastructure.llm.resilient import ResilientProvider
from cadenza.infrastructure.resilience import Breaker, BreakerState

SEARCH = ToolSpec(
    "search",
    "Search the catalogue.",
    {
        "type": "object",
        "properties": {"text": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["text", "limit"],
    },
)


def user(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest("", (ChatMessage("user", text),), **kwargs)


def state(breaker: Breaker) -> BreakerState:
    # A function call, so mypy does not narrow the property across the breaker's transitions.
    return breaker.state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(models=("fake-small", "fake-large")) as fake:
        yield fake


@pytest.fixture
async def provider(server: FakeOpenAIServer) -> AsyncIterator[OpenAICompatibleProvider]:
    inner = OpenAICompatibleProvider(
        "fake", base_url=server.base_url, api_key="test-key", default_model="fake-small"
    )
    yield inner
    await inner.aclose()


def resilient(
    inner: OpenAICompatibleProvider, breaker: Breaker | None = None, attempts: int = 3
) -> ResilientProvider:
    return ResilientProvider(inner, breaker, attempts=attempts, initial_s=0.01, max_s=2.0)


# ---- OpenAI-compatible: mapping ----------------------------------------------------------------
async def test_plain_answer_with_usage_and_idempotency_key(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    answer = await provider.chat(user("hello there", idempotency_key="i-1:n:0:1", max_tokens=50))
    assert answer.message == ChatMessage("assistant", "echo: hello there")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 3)
    assert (answer.model, answer.finish_reason, answer.provider) == ("fake-small", "stop", "fake")
    [logged] = server.requests
    assert logged.idempotency_key == "i-1:n:0:1"
    assert logged.body is not None
    assert logged.body["max_tokens"] == 50
    assert "tools" not in logged.body


async def test_tool_call_round_trip(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    question = ChatMessage("user", f"please {MAGIC_TOOL_WORD} for shoes")
    first = await provider.chat(ChatRequest("", (question,), tools=(SEARCH,)))
    assert first.finish_reason == "tool_calls"
    [call] = first.message.tool_calls
    assert (call.name, call.arguments) == ("search", {"text": question.content})
    result = ChatMessage("tool", '{"hits": 3}', tool_call_id=call.id)
    second = await provider.chat(
        ChatRequest("", (question, first.message, result), tools=(SEARCH,))
    )
    assert second.message.content == 'tool said: {"hits": 3}'
    sent = server.requests[0].body
    assert sent is not None
    assert sent["tools"][0]["function"]["parameters"] == SEARCH.input_schema
    replay = server.requests[1].body
    assert replay is not None
    assistant, tool = replay["messages"][1], replay["messages"][2]
    assert assistant["tool_calls"][0]["function"]["name"] == "search"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == call.arguments
    assert tool == {"role": "tool", "tool_call_id": call.id, "content": '{"hits": 3}'}


async def test_streaming_tokens_in_order_make_the_final_message(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    tokens: list[str] = []
    answer = await provider.chat(user("one two three four"), tokens.append)
    assert tokens == ["echo:", " one", " two", " three", " four"]
    assert answer.message.content == "".join(tokens)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 5)
    body = server.requests[0].body
    assert body is not None
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_streaming_assembles_tool_call_deltas(provider: OpenAICompatibleProvider) -> None:
    tokens: list[str] = []
    request = ChatRequest("", (ChatMessage("user", f"{MAGIC_TOOL_WORD} now"),), tools=(SEARCH,))
    answer = await provider.chat(request, tokens.append)
    assert tokens == []
    [call] = answer.message.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "search", {"text": "use-tool now"})
    assert answer.finish_reason == "tool_calls"


async def test_structured_output_sends_json_schema_response_format(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    answer = await provider.chat(user("classify", response_schema=schema))
    assert answer.message.content is not None
    assert json.loads(answer.message.content) == {"answer": "echo: classify"}
    body = server.requests[0].body
    assert body is not None
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": False},
    }


async def test_list_models(provider: OpenAICompatibleProvider) -> None:
    assert await provider.list_models() == ["fake-small", "fake-large"]


# ---- OpenAI-compatible: resilience -------------------------------------------------------------
async def test_rate_limit_honours_retry_after(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    server.script(("status", 429, {"Retry-After": "0.3"}))
    answer = await resilient(provider).chat(user("hi", idempotency_key="k-429"))
    assert answer.message.content == "echo: hi"
    first, second = server.requests
    assert second.at - first.at >= 0.3  # backoff alone would be ~0.01 s
    assert first.idempotency_key == second.idempotency_key == "k-429"


async def test_server_error_burst_is_retried_then_succeeds(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    server.script(("status", 500), ("status", 503))
    answer = await resilient(provider).chat(user("hi", idempotency_key="k-5xx"))
    assert answer.message.content == "echo: hi"
    assert [r.idempotency_key for r in server.requests] == ["k-5xx"] * 3


async def test_server_errors_beyond_the_attempts_surface_as_retryable(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    server.script(("status", 500), ("status", 500), ("status", 500), ("status", 500))
    with pytest.raises(ProviderError) as caught:
        await resilient(provider).chat(user("hi"))
    assert (caught.value.retryable, caught.value.status) == (True, 500)
    assert len(server.requests) == 3


async def test_hang_is_bounded_by_the_timeout(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    server.script(("hang", 30.0), ("hang", 30.0))
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await resilient(provider, attempts=2).chat(user("hi", timeout_s=0.3))
    elapsed = time.monotonic() - started
    assert caught.value.retryable
    assert len(server.requests) == 2
    assert 0.6 <= elapsed < 3.0


async def test_client_error_is_not_retried(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    server.script(("status", 400))
    breaker = Breaker("fake", threshold=1)
    with pytest.raises(ProviderError) as caught:
        await resilient(provider, breaker).chat(user("hi"))
    assert (caught.value.retryable, caught.value.status) == (False, 400)
    assert len(server.requests) == 1
    assert state(breaker) is BreakerState.CLOSED  # a 400 proves the provider is up


async def test_breaker_opens_after_failures_and_half_opens_after_reset(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    clock = FakeClock()
    changes: list[tuple[str, BreakerState, BreakerState]] = []
    breaker = Breaker(
        "fake", threshold=2, reset_s=30.0, clock=clock, on_change=lambda *c: changes.append(c)
    )
    guarded = resilient(provider, breaker, attempts=1)
    server.script(("status", 500), ("status", 502))
    for _ in range(2):
        with pytest.raises(ProviderError):
            await guarded.chat(user("hi"))
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(ProviderError) as refused:
        await guarded.chat(user("hi"))
    assert refused.value.retryable
    assert refused.value.retry_after == pytest.approx(30.0)
    assert len(server.requests) == 2  # the open circuit sent nothing

    clock.now += 31.0  # the trial call fails: open again
    server.script(("status", 500))
    with pytest.raises(ProviderError):
        await guarded.chat(user("hi"))
    assert state(breaker) is BreakerState.OPEN

    clock.now += 31.0  # the trial call succeeds: closed
    answer = await guarded.chat(user("again"))
    assert answer.message.content == "echo: again"
    assert state(breaker) is BreakerState.CLOSED
    closed, open_, half = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
    assert changes == [
        ("fake", closed, open_),
        ("fake", open_, half),
        ("fake", half, open_),
        ("fake", open_, half),
        ("fake", half, closed),
    ]


async def test_half_open_admits_a_single_trial() -> None:
    clock = FakeClock()
    breaker = Breaker("b", threshold=1, reset_s=1.0, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    clock.now += 2.0
    breaker.before_call()  # the trial
    with pytest.raises(Exception, match="open"):
        breaker.before_call()
    breaker.record_abandoned()  # a cancelled trial frees the slot
    breaker.before_call()


async def test_resilient_list_models(
    server: FakeOpenAIServer, provider: OpenAICompatibleProvider
) -> None:
    server.script(("status", 503))
    assert await resilient(provider).list_models() == ["fake-small", "fake-large"]


# ---- Anthropic ---------------------------------------------------------------------------------
@pytest.fixture
async def anthropic_server() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer(models=("claude-fake",)) as fake:
        yield fake


@pytest.fixture
async def claude(anthropic_server: FakeAnthropicServer) -> AsyncIterator[AnthropicProvider]:
    inner = AnthropicProvider(
        "claude", base_url=anthropic_server.root_url, api_key="k", default_model="claude-fake"
    )
    yield inner
    await inner.aclose()


async def test_anthropic_plain_answer_with_usage(
    anthropic_server: FakeAnthropicServer, claude: AnthropicProvider
) -> None:
    request = ChatRequest(
        "",
        (ChatMessage("system", "Be brief."), ChatMessage("user", "hello there")),
        idempotency_key="k-a",
    )
    answer = await claude.chat(request)
    assert answer.message == ChatMessage("assistant", "echo: hello there")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 3)
    assert (answer.finish_reason, answer.model) == ("stop", "claude-fake")
    [logged] = anthropic_server.requests
    assert logged.idempotency_key == "k-a"
    assert logged.body is not None
    assert logged.body["system"] == "Be brief."
    assert logged.body["max_tokens"] == 4096


async def test_anthropic_tool_call_round_trip(
    anthropic_server: FakeAnthropicServer, claude: AnthropicProvider
) -> None:
    question = ChatMessage("user", f"{MAGIC_TOOL_WORD} please")
    first = await claude.chat(ChatRequest("", (question,), tools=(SEARCH,)))
    [call] = first.message.tool_calls
    assert (call.name, call.arguments, first.finish_reason) == (
        "search",
        {"text": question.content},
        "tool_calls",
    )
    assert first.usage.prompt_tokens > 0
    assert first.usage.completion_tokens > 0
    result = ChatMessage("tool", "42", tool_call_id=call.id)
    second = await claude.chat(ChatRequest("", (question, first.message, result), tools=(SEARCH,)))
    assert second.message.content == "tool said: 42"
    body = anthropic_server.requests[1].body
    assert body is not None
    assert body["tools"][0]["input_schema"] == SEARCH.input_schema
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "42"}],
    }


async def test_anthropic_streaming(claude: AnthropicProvider) -> None:
    tokens: list[str] = []
    answer = await claude.chat(user("a b c"), tokens.append)
    assert tokens == ["echo:", " a", " b", " c"]
    assert answer.message.content == "echo: a b c"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 4)


async def test_anthropic_overload_is_retryable_and_models_list(
    anthropic_server: FakeAnthropicServer, claude: AnthropicProvider
) -> None:
    anthropic_server.script(("status", 529, {"retry-after": "0.05"}))
    guarded = ResilientProvider(claude, Breaker("claude"), initial_s=0.01)
    assert (await guarded.chat(user("x"))).message.content == "echo: x"
    assert await claude.list_models() == ["claude-fake"]


# ---- offline -----------------------------------------------------------------------------------
async def test_offline_is_deterministic_and_labelled() -> None:
    offline = OfflineProvider()
    first = await offline.chat(user("what is the weather?"))
    again = await offline.chat(user("what is the weather?"))
    other = await offline.chat(user("something else"))
    assert first.message == again.message
    assert first.message.content is not None
    assert other.message.content is not None
    assert first.message.content.startswith("[offline]")
    assert first.message.content != other.message.content
    assert (first.model, first.provider) == ("offline", "offline")
    tokens: list[str] = []
    streamed = await offline.chat(user("what is the weather?"), tokens.append)
    assert "".join(tokens) == streamed.message.content == first.message.content
    assert await offline.list_models() == ["offline"]


async def test_offline_calls_the_first_tool_then_answers_with_its_result() -> None:
    offline = OfflineProvider()
    question = ChatMessage("user", "find shoes")
    first = await offline.chat(ChatRequest("", (question,), tools=(SEARCH,)))
    [call] = first.message.tool_calls
    assert (call.name, call.arguments) == ("search", {"text": "find shoes", "limit": 1})
    assert first.finish_reason == "tool_calls"
    again = await offline.chat(ChatRequest("", (question,), tools=(SEARCH,)))
    assert again.message.tool_calls == first.message.tool_calls
    result = ChatMessage("tool", "3 hits", tool_call_id=call.id)
    final = await offline.chat(ChatRequest("", (question, first.message, result), tools=(SEARCH,)))
    assert final.message.content == "[offline] The tool returned: 3 hits"
    assert final.message.tool_calls == ()


async def test_offline_honours_the_response_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["spam", "ham"]},
            "score": {"type": "number", "minimum": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "note": {"type": "string", "minLength": 12},
            "ok": {"type": "boolean"},
        },
        "required": ["label", "score", "tags", "note", "ok"],
        "additionalProperties": False,
    }
    answer = await OfflineProvider().chat(user("classify this", response_schema=schema))
    assert answer.message.content is not None
    value = json.loads(answer.message.content)
    jsonschema.validate(value, schema)
    assert value["tags"] == ["[offline]"]
