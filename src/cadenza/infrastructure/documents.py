"""Read definition documents and input files (YAML or JSON) with errors that say where.

Hostile files end in a clear error, never a traceback or a stall:

- bytes that are not UTF-8 are reported with their offset;
- nesting is limited to ``MAX_DEPTH`` containers: the YAML composer stops at the first level
  too deep (before recursing further), JSON's parser stops at Python's recursion limit and
  the value is checked after;
- YAML aliases are counted *while composing*, before anything is expanded: at most
  ``MAX_YAML_ALIASES`` uses, and the document as it would be once expanded may hold at most
  ``MAX_YAML_VALUES`` values and ``MAX_YAML_CHARS`` characters of scalars (a billion-laughs
  document of 9 levels is refused after a few hundred events); a recursive alias is refused;
- a key given twice in one mapping is an error with its JSON path (YAML and JSON alike),
  rather than the last one silently winning;
- long values are cut in messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import yaml

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import MAX_DEPTH, MAX_SHOWN, child_path, clip, too_deep
from cadenza.infrastructure.yaml_bounded import BoundedLoader, YamlBudget, duplicate_key

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_YAML_ALIASES = 1_000
MAX_YAML_VALUES = 200_000
MAX_YAML_CHARS = 2 * MAX_DOCUMENT_BYTES
_BUDGET = YamlBudget(MAX_DEPTH, MAX_YAML_ALIASES, MAX_YAML_VALUES, MAX_YAML_CHARS)


class DocumentError(ValueError):
    """A file that cannot be read as a document; the message names the file and the place."""

    def __init__(self, message: str) -> None:
        super().__init__(clip(message, 8 * MAX_SHOWN))


def read_document(path: Path) -> JSONObject:
    """The mapping in a YAML or JSON file (by suffix: ``.json`` is JSON, anything else YAML)."""
    if not path.exists():
        raise DocumentError(f"{path}: no such file")
    if not path.is_file():
        raise DocumentError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{path}: {size} bytes exceeds the {MAX_DOCUMENT_BYTES}-byte limit")
    data = path.read_bytes()[: MAX_DOCUMENT_BYTES + 1]  # the file may grow after stat
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{path}: exceeds the {MAX_DOCUMENT_BYTES}-byte limit")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc
    return parse_document(text, str(path))


def parse_document(text: str, name: str = "<document>") -> JSONObject:
    """The mapping in ``text``: JSON when ``name`` ends in ``.json``, else YAML."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{name}: exceeds the {MAX_DOCUMENT_BYTES}-byte limit")
    value = _json(text, name) if name.endswith(".json") else _yaml(text, name)
    if value is None:
        raise DocumentError(f"{name}: the document is empty; expected a mapping")
    if not isinstance(value, dict):
        raise DocumentError(
            f"{name}: expected a mapping at the top level, got {type(value).__name__}"
        )
    return _jsonable(value, name)


# ---- JSON ------------------------------------------------------------------------------------
class _Pairs(dict[str, Any]):
    """A JSON object in which a key appeared more than once (found after parsing, with a path)."""

    duplicates: list[str]


class _NotJson(DocumentError):
    """Text that is not JSON at all (as opposed to JSON beyond the limits)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    duplicates: list[str] = []
    for key, value in pairs:
        if key in out:
            duplicates.append(key)
        out[key] = value
    if not duplicates:
        return out
    marked = _Pairs(out)
    marked.duplicates = duplicates
    return marked


def _json(text: str, name: str) -> object:
    try:
        value = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise _NotJson(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise DocumentError(f"{name}: invalid JSON: nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise DocumentError(f"{name}: invalid JSON: {exc}") from exc
    deep = too_deep(value, MAX_DEPTH, "$")
    if deep is not None:
        raise DocumentError(f"{name}: {deep}: nested deeper than {MAX_DEPTH} levels")
    stack: list[tuple[object, str]] = [(value, "$")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _Pairs):
            key = item.duplicates[0]
            raise DocumentError(f"{name}: {where}: duplicate key {clip(repr(key))}")
        if isinstance(item, dict):
            stack.extend((v, child_path(where, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, child_path(where, i)) for i, v in enumerate(item))
    return value


# ---- YAML (composed by ``yaml_bounded.BoundedLoader``) -----------------------------------------
def _yaml(text: str, name: str) -> object:
    loader = BoundedLoader(text, _BUDGET)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicate = duplicate_key(node)
        if duplicate is not None:
            raise DocumentError(f"{name}: {duplicate}")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"{where}: invalid YAML: {problem}") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(f"{name}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _jsonable(value: dict[Any, Any], name: str) -> JSONObject:
    # YAML may produce dates and non-string keys; round-trip through JSON to get plain data.
    # Bounded: the parsers above refused anything deeper than MAX_DEPTH or larger once expanded.
    try:
        out = json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"{name}: cannot be represented as JSON: {exc}") from exc
    assert isinstance(out, dict)
    return out


def parse_input_pairs(pairs: list[str]) -> JSONObject:
    """``key=value`` pairs; a value that parses as JSON keeps its type, else it is a string."""
    out: JSONObject = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise DocumentError(f"--input {clip(repr(pair))}: expected key=value")
        try:
            out[key] = cast(JSON, _json(raw, f"--input {clip(key)}"))
        except _NotJson:
            out[key] = raw
    return out
