"""Tool definitions as the application sees them, their hashes, and call results.

A definition is pinned by the sha256 of the canonical JSON (sorted keys, no whitespace) of
exactly what a model or the policy relies on: name, description, input schema and annotations.
Anything else (titles, icons) may change without re-approval.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import cast

import mcp_types as types

from cadenza.application.ports_ai import ToolInfo, ToolResult
from cadenza.domain.json import JSON, JSONObject


def definition_hash(
    name: str, description: str, schema: JSONObject, annotations: JSONObject
) -> str:
    """sha256 (hex) of the canonical JSON of a tool's name, description, schema, annotations."""
    canonical = json.dumps(
        {
            "name": name,
            "description": description,
            "input_schema": schema,
            "annotations": annotations,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def tool_info(server: str, tool: types.Tool) -> ToolInfo:
    """The port's view of an SDK tool; annotations keep their wire names (``readOnlyHint``)."""
    annotations = (
        tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
        if tool.annotations is not None
        else {}
    )
    description = tool.description or ""
    schema = cast(JSONObject, tool.input_schema)
    return ToolInfo(
        server=server,
        name=tool.name,
        description=description,
        input_schema=schema,
        annotations=annotations,
        definition_hash=definition_hash(tool.name, description, schema, annotations),
    )


def tool_result(result: types.CallToolResult) -> ToolResult:
    """Text parts joined into one string; any other block kind keeps every block as JSON."""
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    content: JSON
    if len(texts) == len(result.content):
        content = "\n".join(texts)
    else:
        content = [
            block.model_dump(mode="json", by_alias=True, exclude_none=True)
            for block in result.content
        ]
    structured = cast(JSON, result.structured_content)
    return ToolResult(content=content, is_error=result.is_error, structured=structured)


@dataclass(frozen=True)
class Pin:
    """The approved definition hash of one tool, and the one the server shows now."""

    pinned_hash: str
    current_hash: str

    @property
    def changed(self) -> bool:
        return self.pinned_hash != self.current_hash
