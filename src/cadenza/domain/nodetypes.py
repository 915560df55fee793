"""The catalog of node types: how each executes, its ports and the JSON Schema of its config.

The catalog is data so that validation, the published schema and the designer share one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cadenza.domain.json import JSONObject


class Execution(StrEnum):
    INLINE = "inline"  # decided by the engine itself (start, end)
    WORKER = "worker"  # leased to a worker that runs an executor
    CONTROL = "control"  # waits on a timer, a signal, child instances or a body scope


@dataclass(frozen=True)
class NodeType:
    name: str
    type_version: int
    execution: Execution
    description: str
    config_schema: JSONObject
    has_body: bool = False
    ports: tuple[str, ...] = ("out",)
    dynamic_ports: bool = False  # condition: ports come from its branches
    retryable: bool = True
    # computed from the template context alone, with no side effect: the engine runs it inside
    # the decision step that reached it (when its templates render without a thread), so a
    # chain of them commits once; otherwise a worker runs it like any other node
    pure: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _obj(props: JSONObject, required: list[str] | None = None) -> JSONObject:
    schema: JSONObject = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


_DURATION: JSONObject = {
    "oneOf": [{"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"}, {"type": "number"}]
}
_EXPR: JSONObject = {"type": "string", "minLength": 1, "description": "a bare Jinja2 expression"}
_BODY: JSONObject = {
    "type": "object",
    "required": ["nodes"],
    "properties": {"nodes": {"type": "array"}, "edges": {"type": "array"}},
    "additionalProperties": False,
}

_TOOLSET: JSONObject = _obj(
    {
        "server": {"type": "string", "minLength": 1},
        "names": {"type": "array", "items": {"type": "string"}},
    },
    ["server"],
)

NODE_TYPES: dict[str, NodeType] = {
    t.name: t
    for t in (
        NodeType(
            "start",
            1,
            Execution.INLINE,
            "Entry point; its output is the instance inputs.",
            _obj({}),
        ),
        NodeType(
            "end",
            1,
            Execution.INLINE,
            "Exit point; the instance completes when it is reached.",
            _obj({}),
        ),
        NodeType(
            "transform",
            1,
            Execution.WORKER,
            "Render a template (any JSON with {{ }} strings) into the node output.",
            _obj(
                {"output": {"description": "JSON value; strings may hold {{ }} templates"}},
                ["output"],
            ),
            pure=True,
        ),
        NodeType(
            "condition",
            1,
            Execution.WORKER,
            "Take the first branch whose expression is true, else the default port.",
            _obj(
                {
                    "branches": {
                        "type": "array",
                        "items": _obj(
                            {"port": {"type": "string", "minLength": 1}, "when": _EXPR},
                            ["port", "when"],
                        ),
                    },
                    "default": {"type": "string", "minLength": 1},
                },
                ["branches", "default"],
            ),
            ports=(),
            dynamic_ports=True,
            pure=True,
        ),
        NodeType(
            "http",
            1,
            Execution.WORKER,
            "Call an HTTP endpoint through the egress guard.",
            _obj(
                {
                    "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]},
                    "url": {"type": "string", "minLength": 1},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "query": {"type": "object"},
                    "json": {},
                    "body": {"type": "string"},
                    "expect_status": {"type": "array", "items": {"type": "integer"}},
                },
                ["url"],
            ),
        ),
        NodeType(
            "wait",
            1,
            Execution.CONTROL,
            "Wait for a duration or until a time (ISO 8601 or epoch seconds, may be templated).",
            {
                "type": "object",
                "properties": {"duration": _DURATION, "until": {"type": ["string", "number"]}},
                "additionalProperties": False,
                "oneOf": [{"required": ["duration"]}, {"required": ["until"]}],
            },
        ),
        NodeType(
            "approval",
            1,
            Execution.CONTROL,
            "Wait for a human decision (approve/reject with a comment); fails at its timeout.",
            _obj(
                {
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "timeout": _DURATION,
                },
                ["title"],
            ),
            ports=("out", "approved", "rejected"),
            retryable=False,
        ),
        NodeType(
            "map",
            1,
            Execution.CONTROL,
            "Run the body once per item, `concurrency` at a time; output: the list of results.",
            _obj(
                {
                    "items": _EXPR,
                    "concurrency": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "max_items": {"type": "integer", "minimum": 1, "maximum": 100000},
                    "output": {
                        "description": "template per item; default: the body's last node output"
                    },
                    "body": _BODY,
                },
                ["items", "body"],
            ),
            has_body=True,
            retryable=False,
        ),
        NodeType(
            "loop",
            1,
            Execution.CONTROL,
            "Run the body until `until` is true, at most `max_iterations` times.",
            _obj(
                {
                    "until": _EXPR,
                    "max_iterations": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "output": {
                        "description": "template per iteration; default: the body's last output"
                    },
                    "body": _BODY,
                },
                ["until", "max_iterations", "body"],
            ),
            has_body=True,
            retryable=False,
        ),
        NodeType(
            "subprocess",
            1,
            Execution.CONTROL,
            "Start another process (pinned version or latest published) and wait for its outputs.",
            _obj(
                {
                    "process": {"type": "string", "minLength": 1},
                    "version": {"oneOf": [{"type": "integer", "minimum": 1}, {"const": "latest"}]},
                    "inputs": {"type": "object"},
                },
                ["process"],
            ),
            retryable=False,
        ),
        NodeType(
            "llm",
            1,
            Execution.WORKER,
            "One model call: a prompt template, optional structured output (JSON Schema).",
            _obj(
                {
                    "provider": {"type": "string", "minLength": 1},
                    "model": {"type": "string", "minLength": 1},
                    "system": {"type": "string"},
                    "prompt": {"type": "string", "minLength": 1},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                    "output_schema": {"type": "object"},
                    "stream": {"type": "boolean", "description": "publish tokens live"},
                },
                ["prompt"],
            ),
        ),
        NodeType(
            "agent",
            1,
            Execution.WORKER,
            "A model with MCP tools in a loop of at most `max_steps` turns, each turn journaled.",
            _obj(
                {
                    "provider": {"type": "string", "minLength": 1},
                    "model": {"type": "string", "minLength": 1},
                    "instructions": {"type": "string", "minLength": 1},
                    "input": {"type": "string"},
                    "tools": {"type": "array", "items": _TOOLSET},
                    "max_steps": {"type": "integer", "minimum": 1, "maximum": 50},
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "output_schema": {"type": "object"},
                },
                ["instructions"],
            ),
        ),
        NodeType(
            "tool",
            1,
            Execution.WORKER,
            "One MCP tool call with templated arguments; retried only if the tool is read-only.",
            _obj(
                {
                    "server": {"type": "string", "minLength": 1},
                    "tool": {"type": "string", "minLength": 1},
                    "arguments": {"type": "object"},
                    "approved_by": {
                        "type": "string",
                        "description": "approval node that must approve a destructive tool",
                    },
                },
                ["server", "tool"],
            ),
        ),
        NodeType(
            "task",
            1,
            Execution.WORKER,
            "Hand the task to a healthy agent whose capabilities cover the node's `requires` "
            "(load-balanced); waits for one up to the node timeout.",
            _obj(
                {
                    "input": {
                        "description": "JSON value sent to the agent; strings may hold {{ }}"
                    },
                    "instructions": {"type": "string", "minLength": 1},
                    "strategy": {"enum": ["least_outstanding", "round_robin", "weighted"]},
                    "agent_type": {"enum": ["llm", "mcp", "http", "worker"]},
                },
            ),
        ),
    )
}
