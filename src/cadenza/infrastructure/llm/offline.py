"""The ``offline`` provider: deterministic answers with no network, for demos and tests.

Everything it says is labelled: text answers start with ``[offline]``, generated strings are
``[offline]``, and the model is ``offline``, so nobody mistakes its output for a real model's.

* Last message from the user, tools offered: it calls the first tool, with arguments built
  from the tool's schema (required fields only; strings get the user's text, numbers 1, ...).
* Last message a tool result: it answers with that result.
* Otherwise: an answer derived from a hash of the last user message (same input, same answer).
* With ``response_schema``: a minimal object valid against the schema, as JSON text.
"""

from __future__ import annotations

import hashlib
import json
import time

from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    TokenSink,
    ToolCall,
    Usage,
)
from cadenza.domain.json import JSON, JSONObject

LABEL = "[offline]"
MODEL = "offline"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def minimal_value(schema: JSON, text: str = LABEL) -> JSON:
    """The smallest value that satisfies ``schema`` in the common cases (const, enum, type,
    required properties, minimum, minLength, minItems); strings get ``text``."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return minimal_value(options[0], text)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        min_length = schema.get("minLength", 0)
        padding = min_length if isinstance(min_length, int) else 0
        return text.ljust(padding, ".")
    if kind in ("integer", "number"):
        number: int | float = 1
        low, low_x = schema.get("minimum"), schema.get("exclusiveMinimum")
        high = schema.get("maximum")
        if isinstance(low, int | float) and number < low:
            number = low
        if isinstance(low_x, int | float) and number <= low_x:
            number = low_x + 1
        if isinstance(high, int | float) and number > high:
            number = high
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        min_items = schema.get("minItems", 0)
        count = min_items if isinstance(min_items, int) else 0
        return [minimal_value(schema.get("items", {}), text) for _ in range(count)]
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, dict) or not isinstance(required, list):
        return {}
    return {
        name: minimal_value(properties.get(name, {}), text)
        for name in required
        if isinstance(name, str)
    }


def _arguments(schema: JSONObject, text: str) -> JSONObject:
    value = minimal_value({**schema, "type": "object"}, text)
    return value if isinstance(value, dict) else {}


class OfflineProvider:
    """A ``ModelProvider`` that never leaves the process; see the module docstring."""

    def __init__(self, name: str = "offline") -> None:
        self.name = name

    async def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        """One deterministic turn; streams the answer word by word to ``on_token``."""
        started = time.perf_counter()
        last = request.messages[-1] if request.messages else ChatMessage("user", "")
        user_text = next(
            (m.content or "" for m in reversed(request.messages) if m.role == "user"), ""
        )
        calls: tuple[ToolCall, ...] = ()
        text: str | None
        if request.tools and last.role == "user":
            tool = request.tools[0]
            call_id = f"offline-{_digest(tool.name + user_text)[:12]}"
            calls = (ToolCall(call_id, tool.name, _arguments(tool.input_schema, user_text)),)
            text = None
        elif request.response_schema is not None:
            text = json.dumps(minimal_value(request.response_schema), sort_keys=True)
        elif last.role == "tool":
            text = f"{LABEL} The tool returned: {last.content or ''}"
        else:
            text = f"{LABEL} Answer {_digest(user_text)[:8]} to: {user_text}"
        if text is not None and on_token is not None:
            for i, word in enumerate(text.split(" ")):
                on_token(word if i == 0 else " " + word)
        prompt = sum(len((m.content or "").split()) for m in request.messages)
        completion = len(text.split()) if text is not None else len(calls)
        return ChatResponse(
            message=ChatMessage("assistant", text, calls),
            usage=Usage(prompt, completion),
            model=MODEL,
            finish_reason="tool_calls" if calls else "stop",
            latency_s=time.perf_counter() - started,
            provider=self.name,
        )

    async def list_models(self) -> list[str]:
        """Always ``["offline"]``."""
        return [MODEL]

    async def aclose(self) -> None:
        """Nothing to close."""
