"""Validate a parsed ``cadenza/v1`` document into a ``Definition``, reporting every problem at once.

Template, expression and JSON Schema syntax are checked through ``Checks`` so that the domain
stays free of Jinja2 and jsonschema; everything else (fields, graph shape) is checked here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

from cadenza.domain.definition import SCHEMA_ID, Definition, ProcessSettings
from cadenza.domain.errors import DefinitionInvalid
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import MAX_DEPTH, Limits, child_path
from cadenza.domain.validation_context import (
    Context,
    check_fields,
    duration_field,
    int_field,
    is_slug,
    kind,
    scan_templates,
    slug_reason,
)
from cadenza.domain.validation_graph import parse_body, parse_graph
from cadenza.domain.validation_secrets import check_secret_references

__all__ = ["MAX_CONCURRENCY", "TOP_FIELDS", "Checks", "child_path", "parse_definition"]

TOP_FIELDS: tuple[str, ...] = (
    "schema",
    "id",
    "name",
    "description",
    "inputs",
    "outputs",
    "vars",
    "settings",
    "nodes",
    "edges",
    "layout",
)
MAX_CONCURRENCY = 10_000
# YAML anchors can make self-referencing or exponentially large values; a definition is small.
_MAX_VALUES = 200_000


class Checks(Protocol):
    """Syntax checks the domain delegates to adapters."""

    def template(self, text: str) -> str | None:
        """None when ``text`` parses as a template, else the reason."""
        ...

    def expression(self, text: str) -> str | None:
        """None when ``text`` parses as a bare expression, else the reason."""
        ...

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        """All violations of ``schema``: (path relative to ``value``, e.g. ``[0].port``, reason)."""
        ...

    def schema_problems(self, schema: JSONObject) -> list[tuple[str, str]]:
        """What makes ``schema`` unusable as a user's JSON Schema (relative path, reason)."""
        ...


def parse_definition(
    document: Mapping[str, object], checks: Checks, limits: Limits | None = None
) -> Definition:
    """Validate ``document`` into the model, or raise ``DefinitionInvalid`` with every problem."""
    limits = limits or Limits()
    ctx = Context(checks, parse_body=parse_body)
    _check_size(document, limits, ctx)
    doc = _JsonCopy(ctx).copy(document, "$")
    if not isinstance(doc, dict):
        ctx.add("$", f"expected a mapping (the process document), got {kind(doc)}")
        raise DefinitionInvalid(ctx.problems)
    _check_top(doc, ctx)
    settings = _settings(doc, ctx)
    graph = parse_graph(doc, "$", ctx)
    check_secret_references(doc, ctx)
    if ctx.problems:
        raise DefinitionInvalid(ctx.problems)
    process_id = _str(doc, "id")
    return Definition(
        id=process_id,
        name=_str(doc, "name") or process_id,
        graph=graph,
        inputs=_obj(doc, "inputs"),
        outputs=_obj(doc, "outputs"),
        vars=_obj(doc, "vars"),
        settings=settings,
        description=_str(doc, "description"),
        document=doc,
    )


def _str(doc: JSONObject, key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def _obj(doc: JSONObject, key: str) -> JSONObject:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


class _JsonCopy:
    """A plain-JSON copy of a parsed document, reporting what YAML may add (dates, odd keys)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._values = 0

    def copy(self, value: object, path: str, depth: int = 0) -> JSON:
        """``depth``: the containers around ``value``; a container adds one more."""
        self._values += 1
        container = isinstance(value, dict | list | tuple | Mapping)
        if (container and depth >= MAX_DEPTH) or self._values > _MAX_VALUES:
            if self._values <= _MAX_VALUES + 1:  # report the size limit once, not per value
                self._ctx.add(
                    path, f"too large or nested deeper than {MAX_DEPTH} levels (a definition)"
                )
            return None
        if value is None or isinstance(value, str | int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        if isinstance(value, dict | Mapping):
            out: JSONObject = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self._ctx.add(child_path(path, str(key)), f"keys must be strings, got {key!r}")
                out[str(key)] = self.copy(item, child_path(path, str(key)), depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self.copy(v, child_path(path, i), depth + 1) for i, v in enumerate(value)]
        # The text stands in so that later checks do not report the same value again.
        self._ctx.add(path, f"expected a JSON value, got {type(value).__name__} {value!r}")
        return str(value)


def _check_size(doc: object, limits: Limits, ctx: Context) -> None:
    """The node count, counted before anything else (checking costs per node)."""
    count, graphs = 0, [doc] if isinstance(doc, Mapping) else []
    while graphs and count <= limits.max_nodes:
        nodes = graphs.pop().get("nodes")
        for node in nodes if isinstance(nodes, list) else []:
            count += 1
            config = node.get("config") if isinstance(node, Mapping) else None
            body = config.get("body") if isinstance(config, Mapping) else None
            if isinstance(body, Mapping):
                graphs.append(body)
    if count > limits.max_nodes:
        ctx.add(
            "$.nodes",
            f"{count} nodes (bodies included) exceed the limit of {limits.max_nodes} "
            "(setting max_definition_nodes)",
        )
        raise DefinitionInvalid(ctx.problems)


def _check_top(doc: JSONObject, ctx: Context) -> None:
    check_fields(doc, TOP_FIELDS, "$", ctx)
    for key in ("schema", "id"):
        if key not in doc:
            ctx.add("$", f"missing required field '{key}'")
    if "schema" in doc and doc["schema"] != SCHEMA_ID:
        ctx.add("$.schema", f"unsupported schema {kind(doc['schema'])}; expected '{SCHEMA_ID}'")
    if "id" in doc and not is_slug(doc["id"]):
        ctx.add("$.id", slug_reason("the process id", doc["id"]))
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            ctx.add(f"$.{key}", f"expected a string, got {kind(doc[key])}")
    for key in ("inputs", "outputs", "vars", "layout"):
        if key in doc and not isinstance(doc[key], dict):
            ctx.add(f"$.{key}", f"expected a mapping, got {kind(doc[key])}")
    inputs = doc.get("inputs")
    if isinstance(inputs, dict) and "type" in inputs and inputs["type"] != "object":
        ctx.add(
            "$.inputs.type",
            f"inputs are a mapping: expected type 'object', got {kind(inputs['type'])}",
        )
    if isinstance(inputs, dict):
        for rel, reason in ctx.checks.schema_problems(inputs):
            ctx.add(f"$.inputs{rel}", f"invalid JSON Schema: {reason}")
    for key in ("outputs", "vars"):
        if isinstance(doc.get(key), dict):
            scan_templates(doc[key], f"$.{key}", ctx)


def _settings(doc: JSONObject, ctx: Context) -> ProcessSettings:
    raw = doc.get("settings", {})
    if not isinstance(raw, dict):
        ctx.add("$.settings", f"expected a mapping {{timeout, max_concurrency}}, got {kind(raw)}")
        return ProcessSettings()
    check_fields(raw, ("timeout", "max_concurrency", "budget"), "$.settings", ctx)
    return ProcessSettings(
        timeout_s=duration_field(raw, "timeout", "$.settings", ctx),
        max_concurrency=int_field(raw, "max_concurrency", (1, MAX_CONCURRENCY), "$.settings", ctx),
        budget=_budget(raw.get("budget"), ctx),
    )


def _budget(raw: JSON, ctx: Context) -> JSONObject:
    """``{tokens, cost}``: an instance that uses more is stopped with a clear error."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.add("$.settings.budget", f"expected a mapping {{tokens, cost}}, got {kind(raw)}")
        return {}
    check_fields(raw, ("tokens", "cost"), "$.settings.budget", ctx)
    out: JSONObject = {}
    for key, value in raw.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        if not ok:
            ctx.add(f"$.settings.budget.{key}", f"expected a positive number, got {value!r}")
        elif key in ("tokens", "cost"):
            out[key] = value
    return out
