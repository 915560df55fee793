"""A corpus of hostile definition files, generated: every one of them is invalid.

Each case is the bytes of one file and its suffix (``.json`` files are read as JSON, others
as YAML), grouped by class. ``python -m tests.security.hostile_definitions`` prints the count
per class (the figures in docs/security.md).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

LONG = 100_000


@dataclass(frozen=True)
class Case:
    cls: str
    name: str
    data: bytes
    suffix: str = ".yaml"

    @property
    def id(self) -> str:
        return f"{self.cls}-{self.name}"


def _doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "cadenza/v1",
        "id": "hostile",
        "nodes": [{"id": "a", "type": "transform", "config": {"output": "x"}}],
    }
    doc.update(extra)
    return doc


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _yaml_text(text: str) -> bytes:
    return text.encode()


_HEAD = "schema: cadenza/v1\nid: hostile\n"
_NODES = "nodes:\n  - {id: a, type: transform, config: {output: x}}\n"


def _encoding() -> Iterator[Case]:
    valid = (_HEAD + _NODES).encode()
    yield Case("encoding", "latin1-yaml", (_HEAD + "name: caf\xe9\n" + _NODES).encode("latin-1"))
    yield Case(
        "encoding",
        "latin1-json",
        json.dumps(_doc(name="café"), ensure_ascii=False).encode("latin-1"),
        ".json",
    )
    yield Case("encoding", "utf16-bom", (_HEAD + _NODES).encode("utf-16"))
    yield Case("encoding", "truncated-multibyte", valid + b"name: \xe2\x82\n")
    yield Case("encoding", "lone-ff", b"\xff" + valid)
    yield Case("encoding", "nul-in-yaml", valid + b"name: a\x00b\n")
    yield Case("encoding", "binary", bytes(range(256)) * 4)


def _nesting() -> Iterator[Case]:
    for depth in (65, 1_000, 10_000):
        yield Case("nesting", f"json-arrays-{depth}", b"[" * depth + b"]" * depth, ".json")
        inner = "[" * depth + "]" * depth
        yield Case(
            "nesting", f"yaml-flow-{depth}", _yaml_text(_HEAD + _NODES + f"vars: {{x: {inner}}}\n")
        )
    objects = '{"a":' * 10_000 + "1" + "}" * 10_000
    yield Case("nesting", "json-objects-10000", objects.encode(), ".json")
    block = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x\n"
    yield Case("nesting", "yaml-block-200", _yaml_text(_HEAD + _NODES + "vars:\n" + _indent(block)))
    deep_vars: Any = "x"
    for _ in range(70):
        deep_vars = {"a": deep_vars}
    yield Case("nesting", "json-vars-70", _json(_doc(vars=deep_vars)), ".json")
    deep_config: Any = "x"
    for _ in range(80):
        deep_config = [deep_config]
    node = {"id": "a", "type": "transform", "config": {"output": deep_config}}
    yield Case("nesting", "json-node-config-80", _json(_doc(nodes=[node])), ".json")


def _indent(text: str) -> str:
    return "".join("  " + line + "\n" for line in text.splitlines())


def _laughs(levels: int, width: int = 9) -> str:
    lines = [f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "vars:\n" + "\n".join(lines) + "\n"


def _aliases() -> Iterator[Case]:
    yield Case("aliases", "billion-laughs-9", _yaml_text(_HEAD + _NODES + _laughs(9)))
    yield Case("aliases", "laughs-6", _yaml_text(_HEAD + _NODES + _laughs(6)))
    yield Case("aliases", "laughs-wide-3x100", _yaml_text(_HEAD + _NODES + _laughs(3, 100)))
    maps = ["  m0: &m0 {a: lol, b: lol, c: lol, d: lol}"]
    for i in range(1, 12):
        maps.append(f"  m{i}: &m{i} {{a: *m{i - 1}, b: *m{i - 1}, c: *m{i - 1}, d: *m{i - 1}}}")
    yield Case(
        "aliases",
        "mapping-laughs-12",
        _yaml_text(_HEAD + _NODES + "vars:\n" + "\n".join(maps) + "\n"),
    )
    yield Case("aliases", "recursive-sequence", _yaml_text(_HEAD + _NODES + "vars: &v [*v]\n"))
    yield Case("aliases", "recursive-mapping", _yaml_text(_HEAD + _NODES + "vars: &v {self: *v}\n"))
    big = "x" * 500_000
    many = ", ".join(["*s"] * 20)
    yield Case(
        "aliases",
        "long-string-x20",
        _yaml_text(_HEAD + _NODES + f"vars:\n  s: &s {big}\n  t: [{many}]\n"),
    )
    uses = ", ".join(["*a"] * 1_500)
    yield Case(
        "aliases", "1500-aliases", _yaml_text(_HEAD + _NODES + f"vars:\n  a: &a 1\n  b: [{uses}]\n")
    )
    merges = ["  b0: &b0 {k0: 1}"]
    for i in range(1, 20):
        merges.append(f"  b{i}: &b{i} {{<<: [*b{i - 1}, *b{i - 1}], k{i}: 1}}")
    yield Case(
        "aliases",
        "merge-keys-20",
        _yaml_text(_HEAD + _NODES + "vars:\n" + "\n".join(merges) + "\n"),
    )
    deep = "[" * 50 + "1" + "]" * 50
    yield Case(
        "aliases",
        "alias-nests-too-deep",
        _yaml_text(_HEAD + _NODES + f"vars:\n  d: &d {deep}\n  e: {'[' * 20}*d{']' * 20}\n"),
    )
    yield Case("aliases", "undefined-alias", _yaml_text(_HEAD + _NODES + "vars: *nothing\n"))


def _duplicates() -> Iterator[Case]:
    yield Case("duplicates", "two-nodes", _yaml_text(_HEAD + _NODES + "nodes: []\n"))
    yield Case(
        "duplicates",
        "json-id-twice",
        b'{"schema": "cadenza/v1", "id": "a", "id": "b", "nodes": []}',
        ".json",
    )
    yield Case(
        "duplicates",
        "node-config-output",
        _yaml_text(
            _HEAD + "nodes:\n  - id: a\n    type: transform\n    config: {output: x, output: y}\n"
        ),
    )
    yield Case(
        "duplicates", "flow-mapping", _yaml_text(_HEAD + _NODES + "vars: {a: 1, b: 2, a: 3}\n")
    )
    yield Case(
        "duplicates",
        "json-deep",
        _json(_doc()).replace(b'"output": "x"', b'"output": "x", "output": "y"'),
        ".json",
    )
    yield Case(
        "duplicates",
        "edge-from",
        _yaml_text(_HEAD + _NODES + "edges:\n  - {from: a, from: b, to: a}\n"),
    )
    yield Case("duplicates", "schema-twice", _yaml_text("schema: cadenza/v1\n" + _HEAD + _NODES))


def _long_values() -> Iterator[Case]:
    long = "x" * LONG
    yield Case("long-values", "process-id", _json(_doc(id=long)), ".json")
    yield Case(
        "long-values",
        "node-id",
        _json(_doc(nodes=[{"id": long, "type": "transform", "config": {"output": "x"}}])),
        ".json",
    )
    yield Case("long-values", "unknown-field", _json(_doc(**{long: 1})), ".json")
    yield Case("long-values", "node-type", _json(_doc(nodes=[{"id": "a", "type": long}])), ".json")
    yield Case(
        "long-values",
        "bad-template",
        _json(
            _doc(
                nodes=[{"id": "a", "type": "transform", "config": {"output": "{{ " + long + " +"}}]
            )
        ),
        ".json",
    )
    yield Case(
        "long-values",
        "huge-integer",
        _yaml_text(_HEAD + _NODES + "settings: {max_concurrency: " + "9" * 5_000 + "}\n"),
    )
    yield Case("long-values", "timeout-text", _json(_doc(settings={"timeout": long})), ".json")


def _schemas() -> Iterator[Case]:
    cases: list[tuple[str, Any]] = [
        ("remote-ref-http", {"properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}}),
        ("remote-ref-https", {"properties": {"x": {"$ref": "https://example.com/s.json#/a"}}}),
        ("relative-ref", {"properties": {"x": {"$ref": "other.json"}}}),
        ("dynamic-ref", {"properties": {"x": {"$dynamicRef": "http://127.0.0.1:9/d.json"}}}),
        ("schema-draft7", {"$schema": "http://json-schema.org/draft-07/schema#"}),
        ("type-nonsense", {"properties": {"x": {"type": "nonsense"}}}),
        ("pattern-unclosed", {"properties": {"x": {"pattern": "(unclosed"}}}),
        ("pattern-lookahead", {"properties": {"x": {"pattern": "^(?=a)a+$"}}}),
        ("pattern-backreference", {"properties": {"x": {"pattern": "^(a)\\1$"}}}),
        ("pattern-properties-bad", {"patternProperties": {"(": {"type": "string"}}}),
        (
            "unevaluated-with-patterns",
            {"patternProperties": {"^a": {}}, "unevaluatedProperties": False},
        ),
        ("minimum-string", {"properties": {"x": {"minimum": "x"}}}),
        ("required-not-list", {"required": "x"}),
        (
            "too-many-refs",
            {
                "$defs": {"a": {"type": "string"}},
                "properties": {f"p{i}": {"$ref": "#/$defs/a"} for i in range(40)},
            },
        ),
    ]
    for name, schema in cases:
        yield Case("input-schema", name, _json(_doc(inputs={"type": "object", **schema})), ".json")
    llm = {
        "id": "a",
        "type": "llm",
        "config": {
            "prompt": "p",
            "output_schema": {
                "type": "object",
                "properties": {"x": {"$ref": "http://127.0.0.1:9/o.json"}},
            },
        },
    }
    yield Case("input-schema", "output-schema-remote-ref", _json(_doc(nodes=[llm])), ".json")


def _size() -> Iterator[Case]:
    def chain(n: int) -> dict[str, Any]:
        nodes = [{"id": f"n{i}", "type": "transform", "config": {"output": "x"}} for i in range(n)]
        edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
        return _doc(nodes=nodes, edges=edges)

    yield Case("size", "1001-nodes", _json(chain(1_001)), ".json")
    yield Case("size", "8000-nodes", _json(chain(8_000)), ".json")
    body = {
        "nodes": [
            {"id": f"b{i}", "type": "transform", "config": {"output": "x"}} for i in range(600)
        ]
    }
    outer = [
        {
            "id": f"m{j}",
            "type": "map",
            "config": {
                "items": "inputs.x",
                "body": {"nodes": [{**n, "id": f"{n['id']}-{j}"} for n in body["nodes"]]},
            },
        }
        for j in range(2)
    ]
    yield Case("size", "bodies-1202-nodes", _json(_doc(nodes=outer)), ".json")
    yield Case("size", "300000-values", _json(_doc(vars={"v": list(range(300_000))})), ".json")
    yield Case(
        "size", "over-2mib", _yaml_text(_HEAD + _NODES + "name: " + "x" * (2 * 1024 * 1024) + "\n")
    )


def _shape() -> Iterator[Case]:
    yield Case("shape", "empty", b"")
    yield Case("shape", "top-level-list", b"- 1\n- 2\n")
    yield Case("shape", "top-level-scalar", b"just text\n")
    yield Case("shape", "two-documents", _yaml_text(_HEAD + _NODES + "---\n" + _HEAD + _NODES))
    yield Case(
        "shape",
        "python-tag",
        _yaml_text(_HEAD + _NODES + "vars: !!python/object/apply:os.system [echo hi]\n"),
    )
    yield Case("shape", "tabs", _yaml_text(_HEAD + "nodes:\n\t- id: a\n"))
    yield Case("shape", "invalid-json", b'{"schema": "cadenza/v1", "id": ', ".json")
    yield Case(
        "shape",
        "json-nan",
        b'{"schema": "cadenza/v1", "id": "a", "nodes": [], "vars": {"x": NaN}}',
        ".json",
    )
    yield Case(
        "shape",
        "cycle",
        _yaml_text(
            _HEAD
            + _NODES
            + "  - {id: b, type: transform, config: {output: x}}\n"
            + "edges:\n  - {from: a, to: b}\n  - {from: b, to: a}\n"
        ),
    )
    yield Case("shape", "self-edge", _yaml_text(_HEAD + _NODES + "edges: [{from: a, to: a}]\n"))
    yield Case("shape", "unknown-type", _yaml_text(_HEAD + "nodes: [{id: a, type: shell}]\n"))
    yield Case("shape", "nodes-mapping", _yaml_text(_HEAD + "nodes: {a: 1}\n"))
    yield Case("shape", "id-number", _yaml_text("schema: cadenza/v1\nid: 12\n" + _NODES))
    yield Case("shape", "boolean-id", _yaml_text("schema: cadenza/v1\nid: yes\n" + _NODES))
    yield Case(
        "shape", "bad-timeout", _yaml_text(_HEAD + _NODES + "settings: {timeout: forever}\n")
    )
    yield Case("shape", "complex-key", _yaml_text(_HEAD + _NODES + "vars: {? [a, b] : 1}\n"))


def corpus() -> list[Case]:
    """Every case; all of them are invalid definitions."""
    return [
        *_encoding(),
        *_nesting(),
        *_aliases(),
        *_duplicates(),
        *_long_values(),
        *_schemas(),
        *_size(),
        *_shape(),
    ]


def counts() -> dict[str, int]:
    return dict(Counter(case.cls for case in corpus()))


if __name__ == "__main__":
    found = counts()
    for cls, n in found.items():
        print(f"{cls}: {n}")
    print(f"total: {sum(found.values())}")
