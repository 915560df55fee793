"""An Anthropic-compatible HTTP server on 127.0.0.1 (real HTTP, port 0) for the Anthropic path.

``POST /v1/messages`` (plain answers, ``tool_use`` with the magic word, streaming events) and
``GET /v1/models``; scripted failures and the request log come from ``ScriptedServer``.
Use ``server.root_url`` as the SDK's ``base_url`` (the SDK adds ``/v1``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from tests.fakes.openai_server import ScriptedServer, Turn, decide


class FakeAnthropicServer(ScriptedServer):
    """``async with FakeAnthropicServer() as server:`` then use ``server.root_url``."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self._messages), web.get("/v1/models", self._models)]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        async def answer(_body: dict[str, Any]) -> web.StreamResponse:
            data = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for m in self.models
            ]
            first, last = self.models[0], self.models[-1]
            return web.json_response(
                {"data": data, "has_more": False, "first_id": first, "last_id": last}
            )

        return await self.handle(request, answer)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: dict[str, Any]) -> web.StreamResponse:
            tools = [t["name"] for t in body.get("tools", [])]
            messages = body.get("messages", [])
            content = messages[-1].get("content") if messages else None
            is_result = isinstance(content, list) and any(
                b.get("type") == "tool_result" for b in content
            )
            turn = decide(body, tools, is_result)
            if body.get("stream"):
                return await self._stream(request, body, turn)
            return web.json_response(self._message(body, turn))

        return await self.handle(request, answer)

    @staticmethod
    def _content(turn: Turn) -> list[dict[str, Any]]:
        if turn.tool_name is None:
            return [{"type": "text", "text": turn.text or ""}]
        return [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": turn.tool_name,
                "input": turn.tool_arguments,
            }
        ]

    def _message(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": self._content(turn),
            "stop_reason": "tool_use" if turn.tool_name else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": turn.prompt_tokens, "output_tokens": turn.completion_tokens},
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], turn: Turn
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            payload = json.dumps({"type": event, **data})
            await response.write(f"event: {event}\ndata: {payload}\n\n".encode())

        start = {**self._message(body, turn), "content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": turn.prompt_tokens, "output_tokens": 1}
        await send("message_start", {"message": start})
        if turn.tool_name is None:
            await send(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            for i, word in enumerate((turn.text or "").split(" ")):
                delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
                await send("content_block_delta", {"index": 0, "delta": delta})
        else:
            block = {"type": "tool_use", "id": "toolu_1", "name": turn.tool_name, "input": {}}
            await send("content_block_start", {"index": 0, "content_block": block})
            arguments = json.dumps(turn.tool_arguments)
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                await send("content_block_delta", {"index": 0, "delta": delta})
        await send("content_block_stop", {"index": 0})
        stop = "tool_use" if turn.tool_name else "end_turn"
        await send(
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": turn.completion_tokens},
            },
        )
        await send("message_stop", {})
        await response.write_eof()
        return response
