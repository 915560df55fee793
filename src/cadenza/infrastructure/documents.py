"""Read definition documents and input files (YAML or JSON) with errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from cadenza.domain.json import JSONObject

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


class DocumentError(ValueError):
    """A file that cannot be read as a document; the message names the file and the place."""


def read_document(path: Path) -> JSONObject:
    if not path.exists():
        raise DocumentError(f"{path}: no such file")
    if not path.is_file():
        raise DocumentError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{path}: {size} bytes exceeds the {MAX_DOCUMENT_BYTES}-byte limit")
    return parse_document(path.read_text(encoding="utf-8"), str(path))


def parse_document(text: str, name: str = "<document>") -> JSONObject:
    try:
        value = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"{where}: invalid YAML: {problem}") from exc
    if not isinstance(value, dict):
        raise DocumentError(
            f"{name}: expected a mapping at the top level, got {type(value).__name__}"
        )
    return _jsonable(value, name)


def _jsonable(value: dict[object, object], name: str) -> JSONObject:
    # YAML may produce dates and non-string keys; round-trip through JSON to get plain data.
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
            raise DocumentError(f"--input {pair!r}: expected key=value")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out
