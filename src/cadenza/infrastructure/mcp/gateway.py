"""``McpGateway``: the ``ToolGateway`` port over the official ``mcp`` SDK.

Per server (``entry.ServerEntry``): one pooled session (``connection``), a lock that
serializes (re)connecting and catalog refreshes, and a cached tool catalog. Each tool's
definition is pinned by hash the first time it is seen; a later, different definition is
flagged as changed and, under the default policy, refused until ``approve`` accepts it, so a
server cannot silently swap what a tool does under a running workflow. With a
``ToolApprovals`` store the pins and approvals hold for every process (``pins.PinBook``).
Sending a call and classifying its failure: ``calls``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import TextIO

import mcp_types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from cadenza.application.ports_ai import ServerInfo, ToolError, ToolInfo, ToolResult
from cadenza.application.ports_approvals import ToolApprovals
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.mcp.calls import TRANSPORT_ERRORS, ToolUnavailable, call_once
from cadenza.infrastructure.mcp.catalog import Pin, tool_info, tool_result
from cadenza.infrastructure.mcp.config import ConfigError, ServerConfig, StdioServer
from cadenza.infrastructure.mcp.entry import ServerEntry, fetch_tools
from cadenza.infrastructure.mcp.pins import PinBook
from cadenza.infrastructure.mcp.policy import ToolPolicy, retry_allowed

log = logging.getLogger(__name__)


class McpGateway:
    """Implements ``ToolGateway`` for the configured servers."""

    def __init__(
        self,
        servers: Iterable[ServerConfig],
        *,
        policy: ToolPolicy | None = None,
        connect_timeout_s: float = 10.0,
        pinned: Mapping[tuple[str, str], str] | None = None,
        errlog: TextIO | None = None,
        approvals: ToolApprovals | None = None,
    ) -> None:
        """``connect_timeout_s`` bounds starting a session and fetching the catalog; ``pinned``
        seeds approved hashes; ``errlog`` receives stdio servers' stderr (default: ours);
        ``approvals`` shares pins and approvals with the other processes."""
        self._policy = policy or ToolPolicy()
        self._connect_timeout_s = connect_timeout_s
        self._servers: dict[str, ServerEntry] = {}
        for config in servers:
            if config.name in self._servers:
                raise ValueError(f"duplicate MCP server name {config.name!r}")
            self._servers[config.name] = ServerEntry(config, errlog)
        self._pins = PinBook(pinned, approvals)
        self._closed = False

    # --- pins ---------------------------------------------------------------------------

    def pins(self) -> dict[tuple[str, str], Pin]:
        """Every tool seen so far, by (server, tool): pinned vs current hash."""
        return self._pins.pins()

    def servers(self) -> list[ServerInfo]:
        """The configured servers, and whether each has a live session now."""
        return [
            ServerInfo(
                name,
                "stdio" if isinstance(entry.connection.config, StdioServer) else "http",
                "connected" if entry.connection.alive else "idle",
            )
            for name, entry in self._servers.items()
        ]

    def pinned_hash(self, server: str, tool: str) -> str | None:
        return self._pins.pinned_hash(server, tool)

    async def approve(self, server: str, tool: str, approved_by: str = "") -> None:
        """Accept a tool's current definition: it becomes the pinned one (stored, when there
        is an approvals store, for every process)."""
        await self._pins.approve(server, tool, approved_by)

    # --- servers changed while running (runtime configuration) ---------------------------

    async def put_server(self, config: ServerConfig, errlog: TextIO | None = None) -> None:
        """Add a server, or replace one's configuration: its pooled session is closed (calls
        in flight on it fail and are retried by their callers) and the next call connects
        anew; its catalog is refetched."""
        old = self._servers.get(config.name)
        self._servers[config.name] = ServerEntry(config, errlog)
        if old is not None:
            async with old.lock:
                await old.connection.close()

    async def remove_server(self, name: str) -> None:
        old = self._servers.pop(name, None)
        if old is not None:
            async with old.lock:
                await old.connection.close()

    # --- catalog ------------------------------------------------------------------------

    def _entry(self, server: str) -> ServerEntry:
        if self._closed:
            raise ToolError("the MCP gateway is closed", retryable=False)
        entry = self._servers.get(server)
        if entry is None:
            raise ToolError(f"unknown MCP server {server!r}", retryable=False)
        return entry

    async def list_tools(self, server: str) -> list[ToolInfo]:
        """The server's tools, from the cache unless a change was announced since."""
        return list((await self._catalog(self._entry(server), refresh=False)).values())

    async def definitions(self, server: str) -> list[types.Tool]:
        """The server's tools as it sent them (annotations, output schema, icons and all)."""
        entry = self._entry(server)
        await self._catalog(entry, refresh=False)
        return list(entry.definitions.values())

    def cached(self, server: str, tool: str) -> ToolInfo | None:
        """A tool's definition from the last listing, without I/O (None: not listed yet)."""
        entry = self._servers.get(server)
        catalog = entry.catalog if entry is not None else None
        return catalog.get(tool) if catalog is not None else None

    def loaded(self, server: str) -> bool:
        """Has the server's catalog been fetched at least once?"""
        entry = self._servers.get(server)
        return entry is not None and entry.catalog is not None

    async def refresh(self, server: str) -> list[ToolInfo]:
        """Fetch the catalog now, whether or not the server announced a change."""
        return list((await self._catalog(self._entry(server), refresh=True)).values())

    async def _catalog(self, entry: ServerEntry, *, refresh: bool) -> dict[str, ToolInfo]:
        async with entry.lock:
            if entry.catalog is not None and not entry.stale and not refresh:
                return entry.catalog
            name = entry.connection.config.name
            # Cleared before fetching: a change announced during the fetch re-marks it stale.
            entry.stale = False
            try:
                session = await self._session(entry)
                async with asyncio.timeout(self._connect_timeout_s):
                    tools = await fetch_tools(session)
            except ToolError:
                entry.stale = True
                raise
            except Exception as exc:  # includes TimeoutError, MCPError, transport failures
                entry.stale = True
                await entry.connection.close()
                # Listing runs nothing, so trying again later is always safe.
                raise ToolUnavailable(
                    f"MCP server {name} unavailable: {exc!r}", retryable=True
                ) from exc
            infos = [tool_info(name, tool) for tool in tools]
            try:
                await self._pins.record(name, infos)
            except Exception as exc:  # the approvals store is away: the catalog is not trusted
                entry.stale = True
                raise ToolError(
                    f"MCP server {name}: tool approvals unavailable: {exc!r}", retryable=True
                ) from exc
            entry.catalog = {info.name: info for info in infos}
            entry.definitions = {tool.name: tool for tool in tools}
            return entry.catalog

    # --- calls --------------------------------------------------------------------------

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        """Call one tool with the key in ``_meta``; bounded by ``timeout_s``. Raises ToolError.

        A failure after the request went out (timeout, crash, lost connection) is retryable
        only if the tool's annotations allow a blind retry (``policy.retry_allowed``).
        """
        raw = await self.call_tool_raw(
            server, name, arguments, idempotency_key=idempotency_key, timeout_s=timeout_s
        )
        return tool_result(raw)

    async def call_tool_raw(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> types.CallToolResult:
        """``call_tool``, answering the server's result as it sent it (the proxy passes it on)."""
        entry = self._entry(server)
        catalog = await self._catalog(entry, refresh=False)
        if name not in catalog:  # maybe added since the last listing
            catalog = await self._catalog(entry, refresh=True)
        info = catalog.get(name)
        if info is None:
            raise ToolError(f"MCP server {server!r} has no tool {name!r}", retryable=False)
        if (
            self._policy.on_change == "block"
            and self._pins.changed(server, name, info.definition_hash)
            and not await self._pins.approved_since(server, name, info.definition_hash)
        ):
            raise ToolError(
                f"MCP tool {server}/{name}: tool definition changed since it was pinned; "
                "re-approve it",
                retryable=False,
            )
        async with entry.lock:  # only to (re)connect; the call itself runs unlocked
            session = await self._session(entry)
            if not retry_allowed(info):
                session = await self._probe(entry, session)
        return await call_once(
            session,
            info,
            arguments,
            idempotency_key=idempotency_key,
            timeout_s=timeout_s,
            alive=lambda: entry.connection.alive,
            drop=lambda: self._drop(entry, session),
        )

    async def _session(self, entry: ServerEntry) -> ClientSession:
        """The entry's session, connecting if needed (caller holds ``entry.lock``)."""
        name = entry.connection.config.name
        if self._closed:  # never start a process that aclose() would not see
            raise ToolError("the MCP gateway is closed", retryable=False)
        try:
            return await entry.connection.session(self._connect_timeout_s)
        except ConfigError as exc:
            raise ToolError(f"MCP server {name}: {exc}", retryable=False) from exc
        except Exception as exc:  # includes TimeoutError: nothing was sent, retry is safe
            raise ToolUnavailable(
                f"MCP server {name} unavailable: {exc!r}", retryable=True
            ) from exc

    async def _probe(self, entry: ServerEntry, session: ClientSession) -> ClientSession:
        """Ping before a call that cannot be retried blindly (caller holds ``entry.lock``).

        A server that died while idle would otherwise fail the call itself, leaving an outcome
        that only looks unknown; a failed ping proves nothing was run, so reconnect instead.
        """
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await session.send_ping()
        except (TimeoutError, MCPError, *TRANSPORT_ERRORS):
            entry.stale = True
            await entry.connection.close()
            return await self._session(entry)
        return session

    async def _drop(self, entry: ServerEntry, session: ClientSession) -> None:
        """Forget a broken session (reaping its process); the next call reconnects.

        Only if it is still the current one: a concurrent call may already have reconnected.
        """
        async with entry.lock:
            entry.stale = True  # the restarted server may offer different tools
            if entry.connection.current in (session, None):
                await entry.connection.close()

    async def ping(self, server: str) -> None:
        """Health check: an MCP ``ping`` round trip. Raises ToolError(retryable=True)."""
        entry = self._entry(server)
        async with entry.lock:
            session = await self._session(entry)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await session.send_ping()
        except (TimeoutError, MCPError, *TRANSPORT_ERRORS) as exc:
            await self._drop(entry, session)
            raise ToolUnavailable(
                f"MCP server {server} did not answer ping: {exc!r}", retryable=True
            ) from exc

    async def aclose(self) -> None:
        """Close every session; stdio servers' processes are stopped and reaped."""
        self._closed = True

        async def close(entry: ServerEntry) -> None:
            async with entry.lock:  # waits out a connect in progress, then stops it
                await entry.connection.close()

        await asyncio.gather(*(close(entry) for entry in self._servers.values()))
