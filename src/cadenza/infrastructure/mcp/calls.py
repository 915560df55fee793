"""One tool call on an MCP session, and what its failure means for the caller.

The gateway (``gateway.McpGateway``) decides whether a call may go out (catalog, pins,
session); this module sends it and classifies what went wrong: a server that could not be
reached, went away or timed out is ``ToolUnavailable`` (what a circuit breaker counts),
retryable only when the tool's annotations allow a blind retry (``policy.retry_allowed``),
since the server may have run it; an error the server answered with is a plain
``ToolError`` that trying again cannot fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from cadenza.application.ports_ai import ToolError, ToolInfo
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.mcp.policy import retry_allowed
from cadenza.infrastructure.observability.tracing import client_span, trace_meta

# Where the idempotency key travels: the request's ``_meta`` (servers read it from there).
IDEMPOTENCY_META_KEY = "idempotency_key"

# Transport failures (ExceptionGroup: from the SDK's task groups): the server may or may not
# have run the tool.
TRANSPORT_ERRORS = (
    OSError,
    EOFError,
    ExceptionGroup,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
)


class ToolUnavailable(ToolError):
    """The server could not be reached, or went away or timed out during the call: a failure
    that says the server is unhealthy (what a circuit breaker counts), unlike an error the
    server answered with."""


async def call_once(
    session: ClientSession,
    info: ToolInfo,
    arguments: JSONObject,
    *,
    idempotency_key: str,
    timeout_s: float,
    alive: Callable[[], bool],
    drop: Callable[[], Awaitable[None]],
) -> types.CallToolResult:
    """Call ``info``'s tool on ``session`` with the key in ``_meta``, bounded by
    ``timeout_s``; ``alive`` tells whether the session's connection still stands after an
    error, ``drop`` forgets a broken session. Raises ToolError."""
    server, name = info.server, info.name
    span = {"cadenza.mcp_server": server, "cadenza.tool": name}
    try:
        async with asyncio.timeout(timeout_s):
            with client_span("mcp.call_tool", span):
                # traceparent in _meta too: stdio servers see no HTTP headers
                meta = {IDEMPOTENCY_META_KEY: idempotency_key, **trace_meta()}
                result = await session.call_tool(
                    name,
                    dict(arguments),
                    read_timeout_seconds=timeout_s,
                    meta=cast(types.RequestParamsMeta, meta),
                )
    except TimeoutError as exc:
        raise ToolUnavailable(
            f"MCP tool {server}/{name} timed out after {timeout_s} s",
            retryable=retry_allowed(info),
        ) from exc
    except MCPError as exc:
        if exc.code == types.REQUEST_TIMEOUT:
            raise ToolUnavailable(
                f"MCP tool {server}/{name} timed out after {timeout_s} s",
                retryable=retry_allowed(info),
            ) from exc
        if exc.code == types.CONNECTION_CLOSED or not alive():
            await drop()
            raise ToolUnavailable(
                f"MCP server {server} went away during {name}: {exc.message}",
                retryable=retry_allowed(info),
            ) from exc
        # The server answered with an error (bad arguments, unknown tool, ...).
        raise ToolError(f"MCP tool {server}/{name} failed: {exc.message}", retryable=False) from exc
    except TRANSPORT_ERRORS as exc:
        await drop()
        raise ToolUnavailable(
            f"MCP server {server} failed during {name}: {exc!r}", retryable=retry_allowed(info)
        ) from exc
    if not isinstance(result, types.CallToolResult):  # pragma: no cover - SDK guarantees it
        raise ToolError(f"MCP tool {server}/{name}: unexpected result", retryable=False)
    return result
