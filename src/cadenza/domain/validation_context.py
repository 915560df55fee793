"""The state and field readers shared by the ``validation`` modules."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from cadenza.domain.definition import Graph
from cadenza.domain.durations import DurationError, parse_duration
from cadenza.domain.errors import Problem
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import MAX_SHOWN, child_path, clip

if TYPE_CHECKING:
    from cadenza.domain.validation import Checks

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

_SLUG = re.compile(SLUG_PATTERN)
_E = TypeVar("_E", bound=StrEnum)


@dataclass
class Context:
    """What one validation run accumulates: the problems and every node id seen so far."""

    checks: Checks
    parse_body: Callable[[JSON, str, Context], Graph | None]
    problems: list[Problem] = field(default_factory=list)
    node_paths: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        """Record a problem at JSONPath ``path`` (a long message is cut: it may echo values)."""
        self.problems.append(Problem(clip(path, 4 * MAX_SHOWN), clip(message, 8 * MAX_SHOWN)))

    def claim(self, node_id: str, path: str) -> bool:
        """Register a node id; ids are unique across bodies too so ``nodes.<id>`` is unambiguous."""
        first = self.node_paths.get(node_id)
        if first is None:
            self.node_paths[node_id] = path
            return True
        self.add(
            f"{path}.id",
            f"duplicate node id '{node_id}': already used by the node at {first}; "
            "ids must be unique in the whole document, bodies included",
        )
        return False


def kind(value: JSON) -> str:
    """How a JSON value reads in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{value!r}".lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {clip(repr(value))}"
    return f"the number {clip(repr(value))}"


def is_slug(value: JSON) -> bool:
    """Whether ``value`` is a valid process or node id."""
    return isinstance(value, str) and _SLUG.match(value) is not None


def slug_reason(what: str, value: JSON) -> str:
    """Why ``value`` is not a valid id, and what one looks like."""
    return (
        f"{what} must be a slug (lowercase letters, digits, '_' or '-', starting with a letter or "
        f"digit, at most 64 characters), got {kind(value)}"
    )


def suggest(word: str, choices: Iterable[str]) -> str:
    """A "did you mean" hint for a likely typo, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_fields(obj: JSONObject, allowed: tuple[str, ...], path: str, ctx: Context) -> None:
    """Report each key of ``obj`` that is not ``allowed``."""
    for key in obj:
        if key not in allowed:
            ctx.add(
                child_path(path, key),
                f"unknown field '{key}'{suggest(key, allowed)}; allowed: {', '.join(allowed)}",
            )


def duration_field(obj: JSONObject, key: str, path: str, ctx: Context) -> float | None:
    """Seconds of the optional duration ``obj[key]``; None when absent or reported."""
    if key not in obj:
        return None
    try:
        return parse_duration(obj[key])
    except DurationError as err:
        ctx.add(child_path(path, key), str(err))
        return None


def int_field(
    obj: JSONObject, key: str, bounds: tuple[int, int], path: str, ctx: Context
) -> int | None:
    """The optional integer ``obj[key]`` within ``bounds``; None when absent or reported."""
    if key not in obj:
        return None
    value = obj[key]
    low, high = bounds
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    ctx.add(child_path(path, key), f"expected an integer from {low} to {high}, got {kind(value)}")
    return None


def choice_field(obj: JSONObject, key: str, default: _E, path: str, ctx: Context) -> _E:
    """The optional enum value ``obj[key]``; ``default`` when absent or reported."""
    enum = type(default)
    values = [e.value for e in enum]
    raw = obj.get(key, default.value)
    if isinstance(raw, str) and raw in values:
        return enum(raw)
    ctx.add(child_path(path, key), f"expected one of {', '.join(values)}, got {kind(raw)}")
    return default


def scan_templates(
    value: JSON, path: str, ctx: Context, skip: frozenset[str] = frozenset()
) -> None:
    """Check the syntax of every string that holds a template, anywhere inside ``value``."""
    if path in skip:
        return
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            reason = ctx.checks.template(value)
            if reason is not None:
                ctx.add(path, f"invalid template: {reason}")
    elif isinstance(value, dict):
        for key, item in value.items():
            scan_templates(item, child_path(path, key), ctx, skip)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            scan_templates(item, child_path(path, index), ctx, skip)
