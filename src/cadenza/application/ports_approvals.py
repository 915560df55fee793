"""Approved MCP tool definitions, shared by every process of a deployment.

A tool's definition is pinned by hash; a changed definition is refused until an admin approves
it. The approvals are stored (``tool_approvals``: server, tool, hash, who, when), so an approval
made on any API process holds for every worker, and the first definition seen of a tool is
recorded too (``FIRST_USE``): trust on first use holds for the whole deployment, not per
process. Adapter: ``infrastructure/sql/approvals.py``; without one, pins live in the gateway's
process only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

FIRST_USE = "first use"  # approved_by of a definition pinned because it was the first seen


@dataclass(frozen=True)
class ToolApproval:
    server: str
    tool: str
    hash: str
    approved_by: str
    approved_at: float


class ToolApprovals(Protocol):
    async def approve(self, approval: ToolApproval) -> None:
        """Record that this definition of the tool is approved (again: the newer time)."""
        ...

    async def approvals(self, server: str) -> list[ToolApproval]:
        """Every approved definition of the server's tools, oldest approval first."""
        ...
