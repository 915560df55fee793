"""How the MCP proxy names the tools it serves, and gives their definitions back."""

from __future__ import annotations

import mcp_types as types
import pytest

from cadenza.infrastructure.mcp.catalog import tool_info
from cadenza.infrastructure.mcp.proxy_protocol import (
    check_server_name,
    original,
    proxied,
    read_error_data,
    split_name,
)

TOOL = types.Tool(
    name="get.time",  # tool names may contain dots: the split is at the first one
    title="Time",
    description="What time is it?",
    input_schema={"type": "object", "properties": {"tz": {"type": "string"}}},
    output_schema={"type": "object"},
    annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    _meta={"vendor/x": 1},
)


def test_proxied_tool_is_named_server_dot_tool_with_everything_else_unchanged() -> None:
    served = proxied("clock", TOOL)
    assert served.name == "clock.get.time"
    assert split_name(served.name) == ("clock", "get.time")
    assert served.annotations == TOOL.annotations
    assert (served.title, served.input_schema, served.output_schema) == (
        TOOL.title,
        TOOL.input_schema,
        TOOL.output_schema,
    )
    assert served.meta == {"vendor/x": 1, "cadenza/server": "clock", "cadenza/tool": "get.time"}


def test_original_gives_back_the_upstream_definition_and_its_hash() -> None:
    found = original(proxied("clock", TOOL))
    assert found is not None
    server, tool = found
    assert (server, tool) == ("clock", TOOL)
    assert tool_info(server, tool) == tool_info("clock", TOOL)


def test_names_without_a_server_part_are_not_proxied_tools() -> None:
    assert split_name("echo") is None
    assert split_name(".echo") is None
    assert original(TOOL.model_copy(update={"name": "echo", "meta": None})) is None


@pytest.mark.parametrize("name", ["a.b", "", "with space", "x" * 65, "a/b"])
def test_server_names_that_cannot_prefix_a_tool_name_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be proxied"):
        check_server_name(name)


def test_a_server_named_in_meta_may_hold_a_dot() -> None:
    """A stored server's name may hold dots: the caller names the server in ``_meta`` and the
    tool is what follows ``server.``."""
    assert split_name("team.search.find", "team.search") == ("team.search", "find")
    assert split_name("team.search.find") == ("team", "search.find")  # no meta: first dot
    assert split_name("other.find", "team.search") is None
    assert split_name("team.search.", "team.search") is None


def test_error_data_is_read_only_when_it_is_the_proxys() -> None:
    assert read_error_data({"retryable": True, "unavailable": False}) == (True, False)
    assert read_error_data({"retryable": "yes", "unavailable": False}) is None
    assert read_error_data(None) is None
