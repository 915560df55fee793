"""Per-node checks of ``cadenza/v1`` documents: fields, config, ports, and the body hand-off."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

from cadenza.domain.definition import (
    DEFAULT_PORT,
    ERROR_PORT,
    Graph,
    Join,
    Node,
    OnError,
    RetryPolicy,
)
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.nodetypes import NODE_TYPES, Execution, NodeType
from cadenza.domain.validation_context import (
    Context,
    check_fields,
    choice_field,
    duration_field,
    int_field,
    is_slug,
    kind,
    scan_templates,
    slug_reason,
    suggest,
)

NODE_FIELDS: tuple[str, ...] = (
    "id",
    "type",
    "name",
    "type_version",
    "config",
    "retry",
    "timeout",
    "on_error",
    "default",
    "join",
    "requires",
)
RETRY_FIELDS = ("max_attempts", "backoff", "initial", "max")
MAX_ATTEMPTS = 100
# Config fields checked here rather than by the catalog schema, because a schema error for them
# ("is not valid under any of the given schemas") would not say what is wrong.
DURATION_FIELDS: dict[str, tuple[str, ...]] = {"wait": ("duration",), "approval": ("timeout",)}


@dataclass(frozen=True)
class NodeDraft:
    """A node as far as it could be read; ``ports`` is None when unknowable (bad type/config)."""

    path: str
    node: Node
    ports: frozenset[str] | None
    default_port: str


def _relaxed_schema(node_type: NodeType) -> JSONObject:
    """The catalog config schema minus the parts checked here with clearer reasons."""
    schema = copy.deepcopy(node_type.config_schema)
    props = schema.get("properties")
    if isinstance(props, dict):
        for key in DURATION_FIELDS.get(node_type.name, ()):
            props[key] = {}
        if node_type.has_body:
            props["body"] = {}
    required = schema.get("required")
    if node_type.name == "loop" and isinstance(required, list):
        schema["required"] = [r for r in required if r != "max_iterations"]
    return schema


_CONFIG_SCHEMAS = {name: _relaxed_schema(t) for name, t in NODE_TYPES.items()}


def _expressions(type_name: str, config: JSONObject) -> Iterator[tuple[str, str]]:
    """(relative path, text) of the bare-expression fields; the rest of a config is templates."""
    fields = {"map": "items", "loop": "until"}
    if type_name in fields and isinstance(text := config.get(fields[type_name]), str):
        yield f".{fields[type_name]}", text
    branches = config.get("branches") if type_name == "condition" else None
    for index, branch in enumerate(branches if isinstance(branches, list) else []):
        if isinstance(branch, dict) and isinstance(when := branch.get("when"), str):
            yield f".branches[{index}].when", when


def _check_condition_ports(config: JSONObject, path: str, ctx: Context) -> None:
    branches = config.get("branches")
    seen: set[str] = set()
    for index, branch in enumerate(branches if isinstance(branches, list) else []):
        port = branch.get("port") if isinstance(branch, dict) else None
        if not isinstance(port, str):
            continue
        where = f"{path}.branches[{index}].port"
        if port == ERROR_PORT:
            ctx.add(
                where, "'error' is reserved for on_error: branch; name the branch port otherwise"
            )
        elif port in seen:
            ctx.add(where, f"duplicate branch port '{port}'; each branch needs its own port")
        seen.add(port)
    if config.get("default") == ERROR_PORT:
        ctx.add(
            f"{path}.default",
            "'error' is reserved for on_error: branch; name the default port otherwise",
        )


def _check_config(config: JSONObject, node_type: NodeType, path: str, ctx: Context) -> None:
    for rel, reason in ctx.checks.schema(_CONFIG_SCHEMAS[node_type.name], config):
        ctx.add(path + rel, reason)
    if node_type.name == "loop" and "max_iterations" not in config:
        ctx.add(path, "loop needs max_iterations (every loop is bounded)")
    if node_type.dynamic_ports:
        _check_condition_ports(config, path, ctx)
    for key in DURATION_FIELDS.get(node_type.name, ()):
        duration_field(config, key, path, ctx)
    if isinstance(output_schema := config.get("output_schema"), dict):
        for rel, reason in ctx.checks.schema_problems(output_schema):
            ctx.add(f"{path}.output_schema{rel}", f"invalid JSON Schema: {reason}")
    skip = {f"{path}.body"}
    for rel, text in _expressions(node_type.name, config):
        skip.add(path + rel)
        syntax = ctx.checks.expression(text)
        if syntax is not None:
            ctx.add(path + rel, f"invalid expression: {syntax}; expected a bare Jinja2 expression")
    scan_templates(config, path, ctx, frozenset(skip))


def _config(
    node: JSONObject, node_type: NodeType | None, path: str, ctx: Context
) -> tuple[JSONObject, Graph | None]:
    """The node config (a body moved out) and its body graph, if the type has one."""
    raw = node.get("config", {})
    path = f"{path}.config"
    if not isinstance(raw, dict):
        ctx.add(path, f"expected a mapping, got {kind(raw)}")
        return {}, None
    if node_type is None:
        return raw, None
    _check_config(raw, node_type, path, ctx)
    if not node_type.has_body:
        return raw, None
    body = ctx.parse_body(raw["body"], f"{path}.body", ctx) if "body" in raw else None
    return {k: v for k, v in raw.items() if k != "body"}, body


def _node_type(node: JSONObject, path: str, ctx: Context) -> NodeType | None:
    name = node.get("type")
    if "type" not in node:
        return None
    if isinstance(name, str) and name in NODE_TYPES:
        node_type = NODE_TYPES[name]
        version = node.get("type_version", node_type.type_version)
        if version != node_type.type_version or isinstance(version, bool):
            ctx.add(
                f"{path}.type_version",
                f"type_version {kind(version)} is not supported for '{name}'; "
                f"supported: {node_type.type_version}",
            )
        return node_type
    known = ", ".join(sorted(NODE_TYPES))
    shown = f"'{name}'" if isinstance(name, str) else kind(name)
    hint = suggest(name, NODE_TYPES) if isinstance(name, str) else ""
    ctx.add(f"{path}.type", f"unknown node type {shown}{hint}; known types: {known}")
    return None


def _retry(node: JSONObject, node_type: NodeType | None, path: str, ctx: Context) -> RetryPolicy:
    base = RetryPolicy()
    raw = node.get("retry", {})
    path = f"{path}.retry"
    if not isinstance(raw, dict):
        ctx.add(
            path, f"expected a mapping {{max_attempts, backoff, initial, max}}, got {kind(raw)}"
        )
        return base
    check_fields(raw, RETRY_FIELDS, path, ctx)
    attempts = int_field(raw, "max_attempts", (1, MAX_ATTEMPTS), path, ctx)
    initial = duration_field(raw, "initial", path, ctx)
    maximum = duration_field(raw, "max", path, ctx)
    if initial is not None and maximum is not None and initial > maximum:
        ctx.add(
            f"{path}.initial",
            f"retry.initial ({initial:g}s) must not exceed retry.max ({maximum:g}s)",
        )
    policy = RetryPolicy(
        max_attempts=attempts or base.max_attempts,
        backoff=choice_field(raw, "backoff", base.backoff, path, ctx),
        initial_s=initial or base.initial_s,
        max_s=maximum or base.max_s,
    )
    if node_type is not None and not node_type.retryable and policy.max_attempts > 1:
        ctx.add(path, f"'{node_type.name}' nodes are not retried; remove retry")
    return policy


def _requires(node: JSONObject, path: str, ctx: Context) -> tuple[str, ...]:
    raw = node.get("requires", [])
    if isinstance(raw, list) and all(isinstance(r, str) and r for r in raw):
        return tuple(r for r in raw if isinstance(r, str))
    ctx.add(f"{path}.requires", f"expected a list of capability names (strings), got {kind(raw)}")
    return ()


def _ports(node_type: NodeType | None, config: JSONObject) -> tuple[frozenset[str] | None, str]:
    """The ports edges may leave from, and the one a plain ``from: node`` means."""
    if node_type is None:
        return None, DEFAULT_PORT
    ports = set(node_type.ports)
    default = DEFAULT_PORT
    if node_type.dynamic_ports:
        branches, default_port = config.get("branches"), config.get("default")
        if not isinstance(branches, list) or not isinstance(default_port, str):
            return None, DEFAULT_PORT
        ports = {p for b in branches if isinstance(b, dict) and isinstance(p := b.get("port"), str)}
        ports.add(default_port)
        default = default_port
    if node_type.execution is not Execution.INLINE:
        ports.add(ERROR_PORT)
    return frozenset(ports), default


def _node_id(node: JSONObject, path: str, ctx: Context) -> str | None:
    node_id = node.get("id")
    if "id" in node and not is_slug(node_id):
        ctx.add(f"{path}.id", slug_reason("a node id", node_id))
    return node_id if isinstance(node_id, str) and node_id else None


def parse_node(value: JSON, path: str, ctx: Context) -> NodeDraft | None:
    """Check one node, reporting every problem; None when it has no usable (unique) id."""
    if not isinstance(value, dict):
        ctx.add(path, f"expected a node mapping with 'id' and 'type', got {kind(value)}")
        return None
    check_fields(value, NODE_FIELDS, path, ctx)
    for key in ("id", "type"):
        if key not in value:
            ctx.add(path, f"missing required field '{key}'")
    node_id = _node_id(value, path, ctx)
    unique = node_id is not None and ctx.claim(node_id, path)
    node_type = _node_type(value, path, ctx)
    config, body = _config(value, node_type, path, ctx)
    name = value.get("name", "")
    if not isinstance(name, str):
        ctx.add(f"{path}.name", f"expected a string, got {kind(name)}")
    on_error = choice_field(value, "on_error", OnError.FAIL, path, ctx)
    default = value.get("default")
    if "default" in value:
        if on_error is not OnError.CONTINUE:
            ctx.add(f"{path}.default", "default is only used with on_error: continue")
        scan_templates(default, f"{path}.default", ctx)
    node = Node(
        id=node_id or "",
        type=node_type.name if node_type else str(value.get("type")),
        config=config,
        name=name if isinstance(name, str) else "",
        type_version=node_type.type_version if node_type else 1,
        retry=_retry(value, node_type, path, ctx),
        timeout_s=duration_field(value, "timeout", path, ctx),
        on_error=on_error,
        default=default,
        join=choice_field(value, "join", Join.ALL, path, ctx),
        requires=_requires(value, path, ctx),
        body=body,
    )
    if not unique:
        return None
    ports, default_port = _ports(node_type, config)
    return NodeDraft(path, node, ports, default_port)
