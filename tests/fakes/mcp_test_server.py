"""An in-repo MCP server for the gateway's integration tests (stdio or streamable HTTP).

Run as ``python tests/fakes/mcp_test_server.py --transport stdio|http [--port N]``.

Tools:

- ``echo`` (read-only): returns its ``text`` argument.
- ``delete_item`` (destructive): appends ``{"item_id", "idempotency_key"}`` (the key read from
  the request ``_meta``) as one JSON line to the file named by ``MCP_TEST_LOG``; with
  ``crash=true`` it dies right after logging, like a server that fails mid-side-effect.
- ``flaky_definition``: its description depends on whether the file named by ``MCP_TEST_FLIP``
  exists, so a test can change a tool's definition under a running client.
- ``flip``: creates (or removes) that file and sends ``notifications/tools/list_changed``.
- ``crash`` (read-only): ``os._exit(1)`` in the middle of the call.
- ``hang`` (read-only): never answers.
- ``read_crash`` (read-only): logs ``{"tool", "idempotency_key", "t"}`` (``t``: the system's
  monotonic clock, comparable across processes) to ``MCP_TEST_LOG``, then dies mid-call.
- ``gate`` (read-only): logs like ``read_crash``, then answers ``"opened"`` once the file named
  by ``MCP_TEST_GATE`` exists: a call a test can hold in flight and release.

Built on the low-level ``Server`` rather than ``MCPServer`` because ``tools/list`` has to be
computed per request for ``flaky_definition``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server

READ_ONLY = types.ToolAnnotations(read_only_hint=True)
DESTRUCTIVE = types.ToolAnnotations(read_only_hint=False, destructive_hint=True)


def _flip_file() -> Path | None:
    name = os.environ.get("MCP_TEST_FLIP")
    return Path(name) if name else None


def _flipped() -> bool:
    path = _flip_file()
    return path is not None and path.exists()


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _tools() -> list[types.Tool]:
    flaky = "Returns 'v2'." if _flipped() else "Returns 'v1'."
    return [
        types.Tool(
            name="echo",
            description="Echo the text back.",
            input_schema=_schema({"text": {"type": "string"}}, ["text"]),
            annotations=READ_ONLY,
        ),
        types.Tool(
            name="delete_item",
            description="Delete an item (records the call and its idempotency key).",
            input_schema=_schema(
                {"item_id": {"type": "string"}, "crash": {"type": "boolean"}}, ["item_id"]
            ),
            annotations=DESTRUCTIVE,
        ),
        types.Tool(
            name="flaky_definition",
            description=flaky,
            input_schema=_schema({}, []),
            annotations=READ_ONLY,
        ),
        types.Tool(name="flip", description="Flip flaky_definition.", input_schema=_schema({}, [])),
        types.Tool(
            name="crash",
            description="Kill the server mid-call.",
            input_schema=_schema({}, []),
            annotations=READ_ONLY,
        ),
        types.Tool(
            name="hang",
            description="Never return.",
            input_schema=_schema({}, []),
            annotations=READ_ONLY,
        ),
        types.Tool(
            name="read_crash",
            description="Log the call, then kill the server mid-call.",
            input_schema=_schema({}, []),
            annotations=READ_ONLY,
        ),
        types.Tool(
            name="gate",
            description="Log the call, answer once the gate file exists.",
            input_schema=_schema({}, []),
            annotations=READ_ONLY,
        ),
    ]


def _text(text: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=is_error)


def _log_call(tool: str, meta: dict[str, Any]) -> None:
    record = {"tool": tool, "idempotency_key": meta.get("idempotency_key"), "t": time.monotonic()}
    with Path(os.environ["MCP_TEST_LOG"]).open("a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=_tools())


async def call_tool(
    ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    args = params.arguments or {}
    match params.name:
        case "echo":
            return _text(str(args.get("text", "")))
        case "delete_item":
            meta: dict[str, Any] = dict(ctx.meta or {})
            record = {
                "item_id": args.get("item_id"),
                "idempotency_key": meta.get("idempotency_key"),
            }
            with Path(os.environ["MCP_TEST_LOG"]).open("a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            if args.get("crash"):
                os._exit(1)
            return _text(f"deleted {args.get('item_id')}")
        case "flaky_definition":
            return _text("v2" if _flipped() else "v1")
        case "flip":
            path = _flip_file()
            if path is None:
                return _text("MCP_TEST_FLIP is not set", is_error=True)
            if path.exists():
                path.unlink()
            else:
                path.touch()
            # Not tied to this request: clients hear it on the connection (the standalone
            # SSE stream over HTTP), which is how a spontaneous change would reach them too.
            await ctx.session.send_tool_list_changed()
            return _text("flipped")
        case "crash":
            os._exit(1)
        case "hang":
            await anyio.sleep_forever()
        case "read_crash":
            _log_call("read_crash", dict(ctx.meta or {}))
            os._exit(1)
        case "gate":
            _log_call("gate", dict(ctx.meta or {}))
            gate = Path(os.environ["MCP_TEST_GATE"])
            while not gate.exists():  # a test fake: polling a file keeps it dependency-free
                await anyio.sleep(0.02)
            return _text("opened")
    return _text(f"unknown tool {params.name}", is_error=True)


def build_server() -> Server[Any]:
    return Server("cadenza-test", version="1.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def _serve_stdio(server: Server[Any]) -> None:
    options = server.create_initialization_options(NotificationOptions(tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = build_server()
    if args.transport == "stdio":
        anyio.run(_serve_stdio, server)
    else:
        app = server.streamable_http_app(host="127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
