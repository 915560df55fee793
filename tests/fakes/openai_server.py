"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (real HTTP, port 0).

It answers ``POST /v1/chat/completions`` (plain answers, tool calls, SSE streaming with a final
usage chunk, ``response_format``) and ``GET /v1/models``. Failures are scripted per test: each
request takes the next behaviour from a queue, then falls back to a plain answer::

    server.script(("status", 429, {"Retry-After": "0.2"}), ("status", 500), ("hang", 5.0))

``("delay", s)`` answers normally after ``s`` seconds. Every request is logged with its path,
``Idempotency-Key`` header, JSON body and arrival time for assertions.

Answers are deterministic: "echo: <last user text>"; with tools offered and the magic word
``use-tool`` in the last user message, the first tool is called with ``{"text": <user text>}``;
after a tool result the answer is "tool said: <result>".
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

MAGIC_TOOL_WORD = "use-tool"
Behaviour = tuple[Any, ...]


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    idempotency_key: str | None
    body: dict[str, Any] | None
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class Turn:
    """What the fake model decided to say for one request."""

    text: str | None
    tool_name: str | None = None
    tool_arguments: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        if self.text is not None:
            return len(self.text.split())
        return 1 + len(json.dumps(self.tool_arguments).split())


def _text_of(content: Any) -> str:
    """OpenAI content is a string; Anthropic's may be a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if block.get("type") == "text":
                parts.append(block["text"])
            elif block.get("type") == "tool_result":
                parts.append(_text_of(block.get("content", "")))
        return " ".join(parts)
    return ""


def decide(body: dict[str, Any], tool_names: list[str], last_is_tool_result: bool) -> Turn:
    """The deterministic fake model shared by both servers."""
    messages = body.get("messages", [])
    prompt_tokens = sum(len(_text_of(m.get("content")).split()) for m in messages) or 1
    last = messages[-1] if messages else {}
    text = _text_of(last.get("content"))
    if last_is_tool_result:
        return Turn(f"tool said: {text}", prompt_tokens=prompt_tokens)
    if tool_names and MAGIC_TOOL_WORD in text:
        return Turn(None, tool_names[0], {"text": text}, prompt_tokens=prompt_tokens)
    return Turn(f"echo: {text}", prompt_tokens=prompt_tokens)


class ScriptedServer:
    """The shared part: start/stop on loopback, the behaviour queue and the request log."""

    def __init__(self, *, delay_s: float = 0.0, models: tuple[str, ...] = ("fake-small",)) -> None:
        self.delay_s = delay_s
        self.models = models
        self.requests: list[LoggedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, one each, in order."""
        self._script.extend(behaviours)

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.add_routes(self.routes())
        # handler_cancellation: a "hang" ends when the client gives up, not at shutdown.
        self._runner = web.AppRunner(
            app, shutdown_timeout=0.5, handler_cancellation=True, access_log=None
        )
        await self._runner.setup()
        # backlog: the pool benchmark opens up to 800 connections at once.
        await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=2048).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(
        self,
        request: web.Request,
        answer: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Log the request, apply the next scripted behaviour, else ``answer`` the body."""
        body = await request.json() if request.can_read_body else None
        self.requests.append(
            LoggedRequest(
                request.path, request.headers.get("Idempotency-Key"), body, time.monotonic()
            )
        )
        behaviour = self._script.popleft() if self._script else ("ok",)
        kind = behaviour[0]
        if kind == "status":
            status = behaviour[1]
            headers = behaviour[2] if len(behaviour) > 2 else {}
            error = {"type": "error", "error": {"type": "fake_error", "message": f"{status}"}}
            return web.json_response(error, status=status, headers=headers)
        if kind == "hang" or kind == "delay":
            await asyncio.sleep(behaviour[1])
        elif self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await answer(body or {})


class FakeOpenAIServer(ScriptedServer):
    """``async with FakeOpenAIServer() as server:`` then use ``server.base_url``."""

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat), web.get("/v1/models", self._models)]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        async def answer(_body: dict[str, Any]) -> web.StreamResponse:
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
            ]
            return web.json_response({"object": "list", "data": data})

        return await self.handle(request, answer)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: dict[str, Any]) -> web.StreamResponse:
            tools = [t["function"]["name"] for t in body.get("tools", [])]
            messages = body.get("messages", [])
            turn = decide(body, tools, bool(messages) and messages[-1].get("role") == "tool")
            if body.get("response_format", {}).get("type") == "json_schema" and turn.text:
                turn = Turn(json.dumps({"answer": turn.text}), prompt_tokens=turn.prompt_tokens)
            if body.get("stream"):
                return await self._stream(request, body, turn)
            return web.json_response(self._completion(body, turn))

        return await self.handle(request, answer)

    @staticmethod
    def _usage(turn: Turn) -> dict[str, int]:
        return {
            "prompt_tokens": turn.prompt_tokens,
            "completion_tokens": turn.completion_tokens,
            "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        }

    def _completion(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text}
        if turn.tool_name is not None:
            message["tool_calls"] = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": turn.tool_name,
                        "arguments": json.dumps(turn.tool_arguments),
                    },
                }
            ]
        finish = "tool_calls" if turn.tool_name else "stop"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self._usage(turn),
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], turn: Turn
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model", "fake"),
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {**base, "choices": choices, **extra}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": d, "finish_reason": finish}]

        await send(delta({"role": "assistant", "content": ""}))
        if turn.text is not None:
            words = turn.text.split(" ")
            for i, word in enumerate(words):
                await send(delta({"content": word if i == 0 else " " + word}))
        else:
            arguments = json.dumps(turn.tool_arguments)
            half = len(arguments) // 2
            first = {"id": "call_1", "type": "function", "function": {"name": turn.tool_name}}
            await send(delta({"tool_calls": [{"index": 0, **first}]}))
            for piece in (arguments[:half], arguments[half:]):
                await send(delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        await send(delta({}, "tool_calls" if turn.tool_name else "stop"))
        if body.get("stream_options", {}).get("include_usage"):
            await send([], usage=self._usage(turn))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
