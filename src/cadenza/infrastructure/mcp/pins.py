"""``PinBook``: each MCP tool's definition pinned by hash, with the stored approvals behind it.

A tool seen for the first time is pinned to its definition; a later, different definition is
flagged as changed until approved. With a ``ToolApprovals`` store (``ports_approvals``) the
pins hold for every process: a first-seen definition is recorded there as ``FIRST_USE``, a tool
first seen by this process keeps the newest definition approved anywhere, and a definition that
differs from the pin is adopted once it was approved on any process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from cadenza.application.ports_ai import ToolInfo
from cadenza.application.ports_approvals import FIRST_USE, ToolApproval, ToolApprovals
from cadenza.infrastructure.mcp.catalog import Pin

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (server, tool)


class PinBook:
    def __init__(
        self, pinned: Mapping[Key, str] | None = None, approvals: ToolApprovals | None = None
    ) -> None:
        self._pinned: dict[Key, str] = dict(pinned or {})
        self._current: dict[Key, str] = {}
        self._approvals = approvals

    def pins(self) -> dict[Key, Pin]:
        """Every tool seen so far, by (server, tool): pinned vs current hash."""
        return {
            key: Pin(pinned_hash=pinned, current_hash=self._current.get(key, pinned))
            for key, pinned in self._pinned.items()
        }

    def pinned_hash(self, server: str, tool: str) -> str | None:
        return self._pinned.get((server, tool))

    def changed(self, server: str, tool: str, definition_hash: str) -> bool:
        return self._pinned.get((server, tool)) != definition_hash

    async def approve(self, server: str, tool: str, approved_by: str) -> None:
        """Accept a tool's current definition (KeyError if the tool has not been seen)."""
        key = (server, tool)
        if key not in self._current:
            raise KeyError(f"tool {tool!r} of MCP server {server!r} has not been seen")
        current = self._current[key]
        if self._approvals is not None:
            await self._approvals.approve(
                ToolApproval(server, tool, current, approved_by, time.time())
            )
        self._pinned[key] = current

    async def record(self, server: str, infos: list[ToolInfo]) -> None:
        """The server's catalog was fetched: pin what it offers (see the module docstring)."""
        stored: list[ToolApproval] | None = None
        for info in infos:
            key = (server, info.name)
            now = info.definition_hash
            self._current[key] = now
            pinned = self._pinned.get(key)
            if pinned == now:
                continue
            if self._approvals is not None:
                if stored is None:  # one query per catalog fetch that needs it
                    stored = await self._approvals.approvals(server)
                known = [a.hash for a in stored if a.tool == info.name]
                if now in known:
                    self._pinned[key] = now
                    continue
                if pinned is None and known:
                    pinned = self._pinned[key] = known[-1]  # changed since approved elsewhere
                elif pinned is None:
                    approval = ToolApproval(server, info.name, now, FIRST_USE, time.time())
                    await self._approvals.approve(approval)
            if pinned is None:
                self._pinned[key] = now
                continue
            log.warning("MCP tool %s/%s changed its definition since it was pinned", *key)

    async def approved_since(self, server: str, tool: str, definition_hash: str) -> bool:
        """The pin differs from ``definition_hash``: was it approved since, on any process?
        If so it becomes the pin."""
        if self._approvals is None:
            return False
        stored = await self._approvals.approvals(server)
        if any(a.tool == tool and a.hash == definition_hash for a in stored):
            self._pinned[(server, tool)] = definition_hash
            return True
        return False
