"""Validation rule: secrets are referenced only where they leave for their destination.

Everywhere else (``transform``, ``condition``, outputs, ``vars``, prompts, tool arguments, a
request body, ...) a template that uses ``secrets`` is rejected with its path, so a value can
never be rendered into something a viewer reads. At run time ``secrets`` is not even in the
template context; this check says so at ``validate``/publish time instead of at the first run.
"""

from __future__ import annotations

from collections.abc import Callable

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import child_path
from cadenza.domain.secrets import SECRET_FIELDS, mentions_secrets, misused
from cadenza.domain.validation_context import Context

_ELSEWHERE = (
    "secrets are not available here: a secret can only be used as {{ secrets.NAME }} in an "
    "http node's url, query or headers, where it is put in as the request leaves"
)
_MISUSED = (
    "a secret is used only as exactly {{ secrets.NAME }}: no filters, indexes, tests or "
    "expressions on it (the value is put in after rendering)"
)
_Judge = Callable[[str], "str | None"]
# Config fields holding a bare expression rather than templates.
_EXPRESSIONS: dict[str, frozenset[str]] = {
    "map": frozenset({"items"}),
    "loop": frozenset({"until"}),
}


def check_secret_references(doc: JSONObject, ctx: Context) -> None:
    """Report every use of ``secrets`` outside the fields that may hold a reference."""
    for key, value in doc.items():
        path = child_path("$", key)
        if key == "nodes" and isinstance(value, list):
            _nodes(value, path, ctx)
        else:
            _forbidden(value, path, ctx)


def _nodes(nodes: list[JSON], path: str, ctx: Context) -> None:
    for index, node in enumerate(nodes):
        node_path = child_path(path, index)
        if not isinstance(node, dict):
            continue
        node_type = node.get("type")
        for key, value in node.items():
            if key == "config" and isinstance(value, dict) and isinstance(node_type, str):
                _config(value, node_type, child_path(node_path, key), ctx)
            else:
                _forbidden(value, child_path(node_path, key), ctx)


def _config(config: JSONObject, node_type: str, path: str, ctx: Context) -> None:
    allowed = SECRET_FIELDS.get(node_type, frozenset())
    expressions = _EXPRESSIONS.get(node_type, frozenset())
    for key, value in config.items():
        field_path = child_path(path, key)
        if key == "body" and isinstance(value, dict):  # a map or loop body: nodes again
            for body_key, item in value.items():
                if body_key == "nodes" and isinstance(item, list):
                    _nodes(item, child_path(field_path, body_key), ctx)
                else:
                    _forbidden(item, child_path(field_path, body_key), ctx)
        elif key in allowed:
            _allowed(value, field_path, ctx)
        elif key in expressions and isinstance(value, str):
            if mentions_secrets(value, expression=True):
                ctx.add(field_path, _ELSEWHERE)
        elif node_type == "condition" and key == "branches":
            _branches(value, field_path, ctx)
        else:
            _forbidden(value, field_path, ctx)


def _branches(branches: JSON, path: str, ctx: Context) -> None:
    if not isinstance(branches, list):
        return _forbidden(branches, path, ctx)
    for index, branch in enumerate(branches):
        if not isinstance(branch, dict):
            continue
        for key, value in branch.items():
            where = child_path(child_path(path, index), key)
            if key == "when" and isinstance(value, str):
                if mentions_secrets(value, expression=True):
                    ctx.add(where, _ELSEWHERE)
            else:
                _forbidden(value, where, ctx)
    return None


def _forbidden(value: JSON, path: str, ctx: Context) -> None:
    _walk(value, path, ctx, lambda text: _ELSEWHERE if mentions_secrets(text) else None)


def _allowed(value: JSON, path: str, ctx: Context) -> None:
    _walk(value, path, ctx, lambda text: _MISUSED if misused(text) else None)


def _walk(value: JSON, path: str, ctx: Context, judge: _Judge) -> None:
    if isinstance(value, str):
        reason = judge(value)
        if reason is not None:
            ctx.add(path, reason)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, child_path(path, key), ctx, judge)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, child_path(path, index), ctx, judge)
