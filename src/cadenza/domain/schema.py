"""The published JSON Schema of ``cadenza/v1`` documents, generated from the node catalog.

Generated rather than written so that the schema, ``validation`` and the designer forms cannot
drift apart. It checks shape only; graph rules (dangling edges, cycles, ports) and template
syntax are ``validation``'s job.
"""

from __future__ import annotations

import copy

from cadenza.domain.definition import SCHEMA_ID, Backoff, Join, OnError
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.nodetypes import NODE_TYPES, NodeType
from cadenza.domain.validation import MAX_CONCURRENCY
from cadenza.domain.validation_context import SLUG_PATTERN
from cadenza.domain.validation_nodes import MAX_ATTEMPTS

SCHEMA_URL = "https://cadenza.dev/schemas/cadenza-v1.json"
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
# `from` is `node` or `node.port`; node ids never hold a dot, so the first dot splits them.
EDGE_SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}(\..+)?$"


def _ref(name: str) -> JSONObject:
    return {"$ref": f"#/$defs/{name}"}


def _strings(values: list[str]) -> list[JSON]:
    return list(values)


def _object(properties: JSONObject, required: list[str] | None = None) -> JSONObject:
    schema: JSONObject = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = _strings(required)
    return schema


def _config_schema(node_type: NodeType) -> JSONObject:
    config = copy.deepcopy(node_type.config_schema)
    properties = config.get("properties")
    if node_type.has_body and isinstance(properties, dict):
        properties["body"] = _ref("body")  # the catalog only sketches the body; recurse here
    return config


def _node_schema(node_type: NodeType) -> JSONObject:
    fields: JSONObject = {
        "id": _ref("slug"),
        "type": {"const": node_type.name},
        "name": {"type": "string"},
        "type_version": {"const": node_type.type_version},
        "config": _config_schema(node_type),
        "retry": _ref("retry"),
        "timeout": _ref("duration"),
        "on_error": {"enum": _strings([e.value for e in OnError])},
        "default": {"description": "the node output when it fails with on_error: continue"},
        "join": {"enum": _strings([e.value for e in Join])},
        "requires": {"type": "array", "items": {"type": "string", "minLength": 1}},
    }
    required = ["id", "type"]
    if "required" in node_type.config_schema or "oneOf" in node_type.config_schema:
        required.append("config")  # an empty config would not do
    schema = _object(fields, required)
    schema["title"] = node_type.name
    schema["description"] = node_type.description
    return schema


def _defs() -> JSONObject:
    retry: JSONObject = {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
        "backoff": {"enum": _strings([e.value for e in Backoff])},
        "initial": _ref("duration"),
        "max": _ref("duration"),
    }
    defs: JSONObject = {
        "slug": {"type": "string", "pattern": SLUG_PATTERN},
        "duration": {
            "oneOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "exclusiveMinimum": 0},
            ]
        },
        "retry": _object(retry),
        "settings": _object(
            {
                "timeout": _ref("duration"),
                "max_concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
                "budget": _object(
                    {
                        "tokens": {"type": "integer", "exclusiveMinimum": 0},
                        "cost": {"type": "number", "exclusiveMinimum": 0},
                    }
                ),
            }
        ),
        "edge": _object(
            {"from": {"type": "string", "pattern": EDGE_SOURCE_PATTERN}, "to": _ref("slug")},
            ["from", "to"],
        ),
        "edges": {"type": "array", "items": _ref("edge")},
        "nodes": {"type": "array", "minItems": 1, "items": _ref("node")},
        "body": _object({"nodes": _ref("nodes"), "edges": _ref("edges")}, ["nodes"]),
        "node": {"oneOf": [_ref(f"node.{name}") for name in sorted(NODE_TYPES)]},
    }
    for name in sorted(NODE_TYPES):
        defs[f"node.{name}"] = _node_schema(NODE_TYPES[name])
    return defs


def definition_json_schema() -> JSONObject:
    """The JSON Schema (draft 2020-12) of a whole ``cadenza/v1`` document."""
    fields: JSONObject = {
        "schema": {"const": SCHEMA_ID},
        "id": _ref("slug"),
        "name": {"type": "string"},
        "description": {"type": "string"},
        "inputs": {
            "type": "object",
            "description": "JSON Schema of the instance inputs",
            "properties": {"type": {"const": "object"}},
        },
        "outputs": {
            "type": "object",
            "description": "output name -> value; strings may be templates",
        },
        "vars": {"type": "object", "description": "constants and templates shared by nodes"},
        "settings": _ref("settings"),
        "nodes": _ref("nodes"),
        "edges": _ref("edges"),
        "layout": {"type": "object", "description": "designer positions; not part of the version"},
    }
    schema = _object(fields, ["schema", "id", "nodes"])
    schema.update(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_URL,
            "title": "Cadenza process definition (cadenza/v1)",
            "$defs": _defs(),
        }
    )
    return schema
