"""What the MCP proxy and its clients agree on, beyond MCP itself.

Naming: the proxy serves each configured server's tool ``T`` of server ``S`` as ``S.T``. MCP
tool names allow ``[A-Za-z0-9._-]`` (SEP-986), so ``/`` is out; the name is split at the first
dot, which is why a server name proxied must not contain one (``check_server_name``). Each
tool also carries ``_meta`` entries naming its server and original tool, which clients read
instead of parsing. Everything else of the definition (description, schemas, annotations,
title, icons) is passed through unchanged.

Extensions, all in ``_meta`` (plain MCP clients can ignore them):

- ``tools/list`` with ``_meta[SERVER_META] = S`` lists only server ``S`` and fails (instead of
  leaving it out) when ``S`` cannot be listed;
- ``tools/call`` reads ``_meta["idempotency_key"]`` (forwarded upstream),
  ``_meta[TIMEOUT_META]`` (seconds, the caller's per-attempt timeout) and
  ``_meta[SERVER_META]`` (the server, when its name holds a dot: the tool's name then
  starts with ``S.``);
- ``ping`` with ``_meta[SERVER_META] = S`` pings server ``S`` through the proxy;
- each of the three with ``_meta[WORKSPACE_META] = W`` names the workspace of the node that
  asks: ``S`` is then W's own stored server when W has one, else the shared or environment
  ``S`` (``application.mcp_scopes``);
- an error answered by the proxy carries ``data = {"retryable": bool, "unavailable": bool}``:
  whether the caller may try again and whether the server (not the call) failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import mcp_types as types

SERVER_META = "cadenza/server"
TOOL_META = "cadenza/tool"
TIMEOUT_META = "cadenza/timeout_s"
WORKSPACE_META = "cadenza/workspace"
IDEMPOTENCY_META = "idempotency_key"  # as the gateway sends it upstream
RETRYABLE = "retryable"
UNAVAILABLE = "unavailable"
# JSON-RPC "server error" range: a tool call the proxy could not complete.
PROXY_ERROR = -32050

_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_server_name(name: str) -> None:
    """Raise ValueError unless ``name`` can prefix proxied tool names."""
    if not _SERVER_NAME.fullmatch(name):
        raise ValueError(
            f"MCP server name {name!r} cannot be proxied: use 1-64 of A-Z a-z 0-9 _ - "
            "(tools are served as <server>.<tool>)"
        )


def proxied_name(server: str, tool: str) -> str:
    return f"{server}.{tool}"


def split_name(name: str, server: object = None) -> tuple[str, str] | None:
    """``(server, tool)`` of a proxied name, None if it has no server part; ``server``: the
    server the caller named in ``_meta`` (a stored server's name may hold a dot)."""
    if isinstance(server, str) and server:
        prefix = f"{server}."
        tool = name[len(prefix) :] if name.startswith(prefix) else ""
        return (server, tool) if tool else None
    server, dot, tool = name.partition(".")
    return (server, tool) if dot and server and tool else None


def proxied(server: str, tool: types.Tool) -> types.Tool:
    """The definition the proxy serves for ``tool`` of ``server``."""
    meta = {**(tool.meta or {}), SERVER_META: server, TOOL_META: tool.name}
    return tool.model_copy(update={"name": proxied_name(server, tool.name), "meta": meta})


def original(tool: types.Tool) -> tuple[str, types.Tool] | None:
    """``(server, upstream definition)`` of a tool the proxy served; None if it is not one."""
    meta = dict(tool.meta or {})
    server, name = meta.pop(SERVER_META, None), meta.pop(TOOL_META, None)
    if not isinstance(server, str) or not isinstance(name, str):
        parts = split_name(tool.name)
        if parts is None:
            return None
        server, name = parts
    return server, tool.model_copy(update={"name": name, "meta": meta or None})


def error_data(*, retryable: bool, unavailable: bool) -> dict[str, bool]:
    return {RETRYABLE: retryable, UNAVAILABLE: unavailable}


def read_error_data(data: object) -> tuple[bool, bool] | None:
    """``(retryable, unavailable)`` from a proxy error's data; None if the data is not ours."""
    if not isinstance(data, Mapping):
        return None
    retryable, unavailable = data.get(RETRYABLE), data.get(UNAVAILABLE)
    if not isinstance(retryable, bool) or not isinstance(unavailable, bool):
        return None
    return retryable, unavailable
