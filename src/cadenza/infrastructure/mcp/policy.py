"""What a tool's MCP annotations allow: blind retries, and whether a human must approve a call.

Annotations are hints from the server (the spec says not to trust them from untrusted servers),
so every rule here errs on the side of not repeating side effects: only a tool that says it is
read-only, or idempotent without being destructive, is retried after a failure whose outcome is
unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cadenza.application.ports_ai import ToolInfo


@dataclass(frozen=True)
class ToolPolicy:
    """Gateway-wide policy.

    ``on_change``: what to do with a tool whose definition no longer matches its pinned hash —
    ``"block"`` refuses calls until it is re-approved, ``"allow"`` only flags it.
    ``approve_destructive``: destructive tools need an explicit approval step before each call
    (enforced by the caller, which owns the approval flow; see ``needs_approval``).
    """

    on_change: Literal["block", "allow"] = "block"
    approve_destructive: bool = False


def _hint(info: ToolInfo, key: str) -> bool | None:
    value = info.annotations.get(key)
    return value if isinstance(value, bool) else None


def is_read_only(info: ToolInfo) -> bool:
    return _hint(info, "readOnlyHint") is True


def is_destructive(info: ToolInfo) -> bool:
    """Destructive unless it says otherwise: the MCP default for a non-read-only tool."""
    return not is_read_only(info) and _hint(info, "destructiveHint") is not False


def retry_allowed(info: ToolInfo) -> bool:
    """May a call whose outcome is unknown (timeout, crash) be repeated without asking?

    Read-only → yes; explicitly destructive → never blindly; otherwise only if idempotent.
    """
    if is_read_only(info):
        return True
    if _hint(info, "destructiveHint") is True:
        return False
    return _hint(info, "idempotentHint") is True


def needs_approval(info: ToolInfo, policy: ToolPolicy) -> bool:
    """Does this call need a human approval step under ``policy``?"""
    return policy.approve_destructive and is_destructive(info)
