"""One configured server as the gateway holds it: its pooled connection, the lock that
serializes (re)connecting and catalog refreshes (calls themselves run concurrently on the
session), and its cached catalog, which a ``tools/list_changed`` notification marks stale."""

from __future__ import annotations

import asyncio
from typing import TextIO

import mcp_types as types
from mcp import ClientSession

from cadenza.application.ports_ai import ToolInfo
from cadenza.infrastructure.mcp.config import ServerConfig
from cadenza.infrastructure.mcp.connection import Connection


class ServerEntry:
    """One configured server: its connection, lock and cached catalog."""

    def __init__(self, config: ServerConfig, errlog: TextIO | None) -> None:
        self.lock = asyncio.Lock()
        self.catalog: dict[str, ToolInfo] | None = None
        self.definitions: dict[str, types.Tool] = {}  # as the server sent them (the proxy)
        self.stale = True
        self.connection = Connection(config, self.invalidate, errlog)

    def invalidate(self) -> None:
        """``tools/list_changed`` arrived: refetch the catalog before the next use."""
        self.stale = True


async def fetch_tools(session: ClientSession) -> list[types.Tool]:
    """Every tool the server lists, page after page."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        if not (cursor := page.next_cursor):
            return tools
