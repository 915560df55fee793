"""Limits on what callers hand in (definitions, inputs) and what nodes hand back (outputs).

Every stored value must be one that every reader can serialize again: the API's JSON encoder
gives up at 255 levels and Python's ``json`` at about 1,000, so a value nested 300 deep that
was stored once made every list of its workspace fail. The checks here run before anything is
stored, iteratively (a hostile value must not exhaust the stack of the check itself), and
report the JSON path of the first offending place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cadenza.domain.json import JSON

MAX_DEPTH = 64
"""Containers (objects/lists) nested in one value: definitions, inputs, outputs, vars."""
MAX_VALUE_BYTES = 1_048_576
"""Default size of one input or output value as compact JSON (UTF-8)."""
MAX_NODES = 1_000
"""Default number of nodes in one definition, map/loop bodies included."""
MAX_SUBPROCESS_DEPTH = 10
"""Default nesting of subprocess instances (a root instance is at depth 0)."""
MAX_SHOWN = 80
"""Characters of a user-supplied value (or key) echoed in a message; the rest is elided."""

_MEMBER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Limits:
    """The limits in force (from settings; the defaults above otherwise)."""

    max_depth: int = MAX_DEPTH
    max_value_bytes: int = MAX_VALUE_BYTES
    max_nodes: int = MAX_NODES
    max_subprocess_depth: int = MAX_SUBPROCESS_DEPTH


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} characters)"


def child_path(path: str, key: str | int) -> str:
    """``path`` extended by an index or member, in JSONPath: ``[0]``, ``.a``, ``['a b']``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _MEMBER.match(key):
        return f"{path}.{clip(key)}"
    escaped = clip(key).replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


def too_deep(value: object, max_depth: int = MAX_DEPTH, path: str = "") -> str | None:
    """The path of the first container nested deeper than ``max_depth``, or None.

    ``{"a": 1}`` has depth 1, ``{"a": [1]}`` depth 2; scalars add nothing."""
    stack: list[tuple[object, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict):
            children = [(v, child_path(where, str(k)), depth + 1) for k, v in item.items()]
        elif isinstance(item, list | tuple):
            children = [(v, child_path(where, i), depth + 1) for i, v in enumerate(item)]
        else:
            continue
        if depth > max_depth:
            return where
        stack.extend(reversed(children))
    return None


def json_size(value: JSON) -> int:
    """Bytes of ``value`` as compact JSON (UTF-8); call ``too_deep`` first."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _depth_and_bound(value: object) -> tuple[int, int]:
    """The nesting depth of ``value`` and an upper bound of its compact JSON size in bytes,
    in one walk without building paths: a string costs at most 6 bytes a character
    (``\\u0000``) plus its quotes, a number or literal at most 32, a separator 1."""
    deepest, bound = 0, 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            bound += 6 * len(item) + 3
        elif isinstance(item, dict):
            deepest = max(deepest, depth)
            bound += 2
            for k, v in item.items():
                bound += 6 * len(str(k)) + 4
                stack.append((v, depth + 1))
        elif isinstance(item, list | tuple):
            deepest = max(deepest, depth)
            bound += 2 + len(item)  # brackets and a comma after each element at most
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 10**30:
            bound += len(str(item)) + 1
        else:
            bound += 33
    return deepest, bound


def json_size_bound(value: JSON) -> int:
    """An upper bound of ``value``'s compact JSON size in bytes, without encoding it."""
    return _depth_and_bound(value)[1]


def value_problem(value: JSON, limits: Limits, what: str) -> tuple[str, str] | None:
    """(path relative to ``value``, reason) when ``value`` breaks the depth or size limit."""
    depth, bound = _depth_and_bound(value)
    if depth > limits.max_depth:  # walked again only now, to name the path
        deep = too_deep(value, limits.max_depth)
        if deep is not None:
            return deep, f"{what} nested deeper than {limits.max_depth} levels"
    if bound <= limits.max_value_bytes:  # cannot be over: no need to encode it
        return None
    size = json_size(value)
    if size > limits.max_value_bytes:
        return "", f"{what} is {size} bytes as JSON; the limit is {limits.max_value_bytes}"
    return None
