"""JSON Schema checks (draft 2020-12), hardened for the schemas users write.

Input schemas and ``output_schema`` come from definition authors, so three things that
``jsonschema`` does by default are off here:

- remote references: the registry refuses to retrieve anything (``jsonschema`` would fetch
  an ``http`` ``$ref`` itself, past the egress guard), and ``schema_problems`` reports every
  reference that is not local (``#...``) when the definition is validated;
- backtracking regular expressions: ``pattern``, ``patternProperties`` and the
  ``additionalProperties`` that depends on them run on RE2, which matches in linear time
  (``^(a+)+$`` against 10^5 characters takes microseconds, not forever). RE2 has no
  look-around or backreferences: such a pattern is reported as unsupported.
  ``unevaluatedProperties`` would match ``patternProperties`` with Python's ``re``, so the two
  may not be combined in one schema. ``format`` is an annotation only (no format checker);
- quadratic work: ``uniqueItems`` and ``enum`` hash values instead of comparing every pair
  (jsonschema's fallback for objects), and a schema
  may hold at most ``MAX_REFS`` references (each can double the work per value);
- schemas that are not schemas: checked against the draft 2020-12 metaschema at validation
  time, so ``type: nonsense`` is a validation error with its path, not a crash at start.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import MAX_SHOWN, child_path, clip

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MESSAGE = 4 * MAX_SHOWN
_REF_KEYS = ("$ref", "$dynamicRef")
_NOT_SCHEMAS = frozenset({"enum", "const", "examples", "default"})  # values, not subschemas
_RE2_MAX_MEM = 8 << 20  # bytes for one compiled pattern; a larger one is "pattern too large"
# References let a schema reuse itself: k references, each used twice, cost 2^k evaluations per
# value (a "billion laughs" of schemas). 32 bound that to ~10^5 in the worst shape.
MAX_REFS = 32
MAX_PROBLEMS = 100  # violations reported for one value; the rest are not even looked for


class SchemaUnusable(ValueError):
    """A stored schema that cannot be applied (it predates the checks, or refers away)."""


def _refuse(uri: str) -> Resource[Any]:
    raise LookupError(f"reference {clip(uri)!r} is not local; remote schemas are never fetched")


_REGISTRY: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MAX_MEM
    return re2.compile(pattern, options)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 cannot run ``pattern``, or None."""
    try:
        _regex(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        return f"regular expression {clip(repr(pattern))} is not supported: {clip(text)}"
    return None


def _search(pattern: str, text: str) -> bool:
    if (problem := regex_problem(pattern)) is not None:
        raise SchemaUnusable(problem)
    return _regex(pattern).search(text) is not None


# ---- keywords on RE2 (same behaviour and messages as jsonschema's, other than the engine) ----
def _pattern(validator: Any, patrn: str, instance: Any, _: Mapping[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not _search(patrn, str(instance)):
        yield ValidationError(f"{clip(repr(instance))} does not match {clip(repr(patrn))}")


def _pattern_properties(
    validator: Any, props: Mapping[str, Any], instance: Any, _: Mapping[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in props.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, extra: Any, instance: Any, schema: Mapping[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        shown = clip(", ".join(repr(k) for k in sorted(extras)))
        yield ValidationError(f"Additional properties are not allowed ({shown} unexpected)")


def _canonical(value: Any) -> Hashable:
    """A hashable key equal for values JSON Schema calls equal (``1 == 1.0``, ``true != 1``)."""
    if isinstance(value, bool) or value is None:
        return ("const", value)
    if isinstance(value, int | float):
        return ("number", int(value) if isinstance(value, float) and value.is_integer() else value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    return ("other", repr(value))


def _unique_items(validator: Any, unique: Any, instance: Any, _: Mapping[str, Any]) -> Any:
    # jsonschema falls back to comparing every pair when items do not sort (objects): 2,000
    # objects took 13 s, a 1 MiB input of 100,000 would take days. Hashing is linear.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Hashable] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"{clip(repr(instance))} has non-unique elements")
            return
        seen.add(key)


# enum -> its canonical keys, holding the list itself so that its id cannot be reused meanwhile
_ENUM_KEYS: dict[int, tuple[object, frozenset[Hashable]]] = {}


def _enum_keys(enums: Any) -> frozenset[Hashable]:
    found = _ENUM_KEYS.get(id(enums))
    if found is None or found[0] is not enums:
        if len(_ENUM_KEYS) >= 1024:
            _ENUM_KEYS.clear()
        values = enums if isinstance(enums, list) else [enums]
        found = (enums, frozenset(_canonical(v) for v in values))
        _ENUM_KEYS[id(enums)] = found
    return found[1]


def _enum(validator: Any, enums: Any, instance: Any, _: Mapping[str, Any]) -> Any:
    # jsonschema compares the value with every member: each of 100,000 items against an enum
    # of 10,000 values would be 10^9 comparisons. A set lookup is one.
    if _canonical(instance) not in _enum_keys(enums):
        yield ValidationError(f"{clip(repr(instance))} is not one of {clip(repr(enums))}")


_Hardened: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "uniqueItems": _unique_items,
        "enum": _enum,
    },
)
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA)


def _where(error: ValidationError) -> str:
    return functools.reduce(child_path, error.absolute_path, "")


def _walk(schema: JSON, path: str = "") -> Iterator[tuple[str, JSONObject]]:
    """Every subschema-like mapping with its path, iteratively (values of enum/const skipped)."""
    stack: list[tuple[JSON, str]] = [(schema, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            yield where, value
            stack.extend(
                (v, child_path(where, k)) for k, v in value.items() if k not in _NOT_SCHEMAS
            )
        elif isinstance(value, list):
            stack.extend((v, child_path(where, i)) for i, v in enumerate(value))


def _own_problems(schema: JSONObject) -> Iterator[tuple[str, str]]:
    uses_patterns = uses_unevaluated = ""
    refs = 0
    for where, sub in _walk(schema):
        for key in _REF_KEYS:
            ref = sub.get(key)
            if not isinstance(ref, str):
                continue
            refs += 1
            if refs == MAX_REFS + 1:
                yield child_path(where, key), f"more than {MAX_REFS} references in one schema"
            if not ref.startswith("#"):
                yield (
                    child_path(where, key),
                    f"reference {clip(repr(ref))} is not local: only '#...' references to this "
                    "schema are allowed (nothing is fetched)",
                )
        dialect = sub.get("$schema")
        if isinstance(dialect, str) and dialect.rstrip("#") != SCHEMA_DIALECT:
            yield child_path(where, "$schema"), f"only draft 2020-12 ({SCHEMA_DIALECT}) is used"
        pattern = sub.get("pattern")
        if isinstance(pattern, str) and (problem := regex_problem(pattern)) is not None:
            yield child_path(where, "pattern"), problem
        if isinstance(props := sub.get("patternProperties"), dict):
            uses_patterns = uses_patterns or child_path(where, "patternProperties")
            for key in props:
                if (problem := regex_problem(key)) is not None:
                    yield child_path(child_path(where, "patternProperties"), key), problem
        if "unevaluatedProperties" in sub:
            uses_unevaluated = uses_unevaluated or child_path(where, "unevaluatedProperties")
    if uses_patterns and uses_unevaluated:
        yield (
            uses_unevaluated,
            f"unevaluatedProperties cannot be combined with patternProperties ({uses_patterns}) "
            "in one schema",
        )


class JsonSchemaChecks:
    """The ``schema`` part of ``cadenza.domain.validation.Checks``."""

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        """Every violation of ``schema`` by ``value``: (relative path like ``[0].port``, reason)."""
        try:
            validator = _validator(json.dumps(schema, sort_keys=True))
            errors = itertools.islice(validator.iter_errors(value), MAX_PROBLEMS + 1)
            found = [(_where(e), clip(e.message, _MESSAGE)) for e in errors]
        except (SchemaUnusable, Unresolvable, RecursionError) as exc:
            return [("", f"the JSON Schema cannot be applied: {clip(str(exc), _MESSAGE)}")]
        if len(found) > MAX_PROBLEMS:
            return [*sorted(found[:MAX_PROBLEMS]), ("", f"more than {MAX_PROBLEMS} problems")]
        return sorted(found)

    def schema_problems(self, schema: JSONObject) -> list[tuple[str, str]]:
        """What makes ``schema`` unusable: metaschema violations, remote references, patterns
        RE2 cannot run; each as (path relative to the schema, reason)."""
        found = {(_where(e), clip(e.message, _MESSAGE)) for e in _META.iter_errors(schema)}
        found.update(_own_problems(schema))
        return sorted(found)


# Keyed by the schema's text, not id(): an id can be reused once a schema is garbage collected.
@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    problems = JsonSchemaChecks().schema_problems(schema)
    if problems:
        path, reason = problems[0]
        raise SchemaUnusable(f"{path or '(root)'}: {reason}")
    return _Hardened(schema, registry=_REGISTRY)
