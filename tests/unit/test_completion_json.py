"""A chat completion read from its JSON: the fields a turn needs, and every one checked."""

from __future__ import annotations

import pytest

from cadenza.application.ports_ai import ProviderError, ToolCall, Usage
from cadenza.infrastructure.llm.completion_json import chat_response


def _answer(message: object, **extra: object) -> dict[str, object]:
    return {
        "id": "c1",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        **extra,
    }


def test_a_text_answer_with_usage() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    r = chat_response(_answer({"role": "assistant", "content": "hi"}, usage=usage), "p", 0.5)
    assert (r.message.role, r.message.content, r.message.tool_calls) == ("assistant", "hi", ())
    assert r.usage == Usage(7, 3)
    assert (r.model, r.finish_reason, r.latency_s, r.provider) == ("m", "stop", 0.5, "p")


def test_tool_calls_are_parsed_and_other_kinds_skipped() -> None:
    calls = [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "t2", "type": "custom", "custom": {"name": "g", "input": "x"}},
    ]
    r = chat_response(_answer({"role": "assistant", "content": None, "tool_calls": calls}), "p", 0)
    assert r.message.tool_calls == (ToolCall("t1", "f", {"a": 1}),)
    assert r.usage == Usage()


@pytest.mark.parametrize(
    ("data", "reason", "retryable"),
    [
        ([], "the answer is not an object", False),
        ({"choices": []}, "answer without choices", True),
        ({"choices": ["x"]}, "a choice is not an object", False),
        (_answer({"content": 5}), "the message content is not a string", False),
        (_answer({"tool_calls": {"a": 1}}), "tool_calls is not a list", False),
        (
            _answer(
                {"tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "["}}]}
            ),
            "tool arguments are not JSON",
            False,
        ),
    ],
)
def test_a_malformed_answer_is_a_provider_error(data: object, reason: str, retryable: bool) -> None:
    with pytest.raises(ProviderError, match=reason) as caught:
        chat_response(data, "p", 0)
    assert caught.value.retryable is retryable
