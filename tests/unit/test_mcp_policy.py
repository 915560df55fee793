"""Tool annotations → retry and approval policy (no server needed)."""

from __future__ import annotations

import pytest

from cadenza.application.ports_ai import ToolInfo
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.mcp import ToolPolicy, definition_hash, needs_approval, retry_allowed
from cadenza.infrastructure.mcp.config import ConfigError, resolve_refs


def _info(**annotations: bool) -> ToolInfo:
    hints: JSONObject = dict(annotations)
    return ToolInfo(server="s", name="t", description="", input_schema={}, annotations=hints)


@pytest.mark.parametrize(
    ("annotations", "retry", "approval"),
    [
        ({"readOnlyHint": True}, True, False),
        ({"readOnlyHint": True, "destructiveHint": True}, True, False),  # read-only wins
        ({"destructiveHint": True}, False, True),
        ({"destructiveHint": True, "idempotentHint": True}, False, True),  # never blindly
        ({"destructiveHint": False}, False, False),  # additive, not known to be idempotent
        ({"destructiveHint": False, "idempotentHint": True}, True, False),
        ({"idempotentHint": True}, True, True),  # MCP default: destructive unless it says not
        ({}, False, True),
    ],
)
def test_annotations_drive_policy(
    annotations: dict[str, bool], retry: bool, approval: bool
) -> None:
    info = _info(**annotations)
    assert retry_allowed(info) is retry
    assert needs_approval(info, ToolPolicy(approve_destructive=True)) is approval
    assert needs_approval(info, ToolPolicy()) is False  # approval is opt-in


def test_definition_hash_is_canonical() -> None:
    a = definition_hash("t", "d", {"type": "object", "properties": {}}, {"readOnlyHint": True})
    b = definition_hash("t", "d", {"properties": {}, "type": "object"}, {"readOnlyHint": True})
    assert a == b
    assert a != definition_hash("t", "d2", {"type": "object", "properties": {}}, {})


def test_env_refs_resolve_at_call_time() -> None:
    environ = {"TOKEN": "secret"}
    assert resolve_refs({"A": "env:TOKEN", "B": "literal"}, environ) == {
        "A": "secret",
        "B": "literal",
    }
    with pytest.raises(ConfigError, match="MISSING"):
        resolve_refs({"A": "env:MISSING"}, environ)
