"""Definition validation: every problem is reported with its JSON path and a reason."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Mapping
from typing import cast

import pytest

from cadenza.domain.definition import Backoff, Edge, Join, OnError, RetryPolicy
from cadenza.domain.errors import DefinitionInvalid, Problem
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.plan import compile_plan
from cadenza.domain.validation import parse_definition
from cadenza.infrastructure.schema_check import JsonSchemaChecks

Doc = dict[str, object]
Obj = dict[str, object]


class FakeSyntax:
    """Real JSON Schema checks; template/expression syntax faked so tests pick the failures."""

    def __init__(self) -> None:
        self._schemas = JsonSchemaChecks()

    def template(self, text: str) -> str | None:
        return "unexpected name 'bad'" if "{{ bad" in text else None

    def expression(self, text: str) -> str | None:
        return "unexpected '('" if "((" in text else None

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        return self._schemas.schema(schema, value)

    def schema_problems(self, schema: JSONObject) -> list[tuple[str, str]]:
        return self._schemas.schema_problems(schema)


CHECKS = FakeSyntax()


def node(node_id: str, node_type: str = "transform", **fields: object) -> Obj:
    config: object = {"output": node_id} if node_type == "transform" else {}
    return {"id": node_id, "type": node_type, "config": config, **fields}


def edge(source: str, target: str) -> Obj:
    return {"from": source, "to": target}


def doc(nodes: list[Obj], edges: list[Obj] | None = None, **top: object) -> Doc:
    return {"schema": "cadenza/v1", "id": "demo", "nodes": nodes, "edges": edges or [], **top}


def body(nodes: list[Obj], edges: list[Obj] | None = None) -> Obj:
    return {"nodes": nodes, "edges": edges or []}


def loop(node_id: str, inner: Obj, **config: object) -> Obj:
    return node(
        node_id, "loop", config={"until": "index > 2", "max_iterations": 3, "body": inner, **config}
    )


def problems_of(document: object) -> list[Problem]:
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(cast(Mapping[str, object], document), CHECKS)
    return caught.value.problems


def approval(node_id: str, **config: object) -> Obj:
    return node(node_id, "approval", config={"title": "ok?", **config})


def condition(node_id: str, *branches: tuple[str, str], default: str = "other") -> Obj:
    config = {"branches": [{"port": p, "when": w} for p, w in branches], "default": default}
    return node(node_id, "condition", config=config)


# Each case: a document with exactly one problem, its path and a phrase of its reason.
CASES: dict[str, tuple[Callable[[], object], str, str]] = {
    "not a mapping": (lambda: ["nodes"], "$", "expected a mapping (the process document)"),
    "wrong schema": (
        lambda: {**doc([node("a")]), "schema": "cadenza/v2"},
        "$.schema",
        "expected 'cadenza/v1'",
    ),
    "bad process id": (lambda: {**doc([node("a")]), "id": "My Process"}, "$.id", "must be a slug"),
    "unknown top-level field": (
        lambda: doc([node("a")], owner="me"),
        "$.owner",
        "unknown field 'owner'",
    ),
    "non-string name": (lambda: doc([node("a")], name=3), "$.name", "expected a string"),
    "inputs not an object schema": (
        lambda: doc([node("a")], inputs={"type": "array"}),
        "$.inputs.type",
        "expected type 'object'",
    ),
    "outputs not a mapping": (
        lambda: doc([node("a")], outputs=["x"]),
        "$.outputs",
        "expected a mapping",
    ),
    "empty nodes": (lambda: doc([]), "$.nodes", "non-empty list of nodes"),
    "node not a mapping": (
        lambda: doc([node("a"), cast(Obj, "b")]),
        "$.nodes[1]",
        "expected a node mapping",
    ),
    "node without type": (
        lambda: doc([{"id": "a"}]),
        "$.nodes[0]",
        "missing required field 'type'",
    ),
    "bad node id": (lambda: doc([node("Has.Dot")]), "$.nodes[0].id", "must be a slug"),
    "duplicate node id": (
        lambda: doc([node("a"), node("b"), node("a")]),
        "$.nodes[2].id",
        "duplicate node id 'a': already used by the node at $.nodes[0]",
    ),
    "duplicate id across a body": (
        lambda: doc([loop("l", body([node("a")])), node("a")]),
        "$.nodes[1].id",
        "already used by the node at $.nodes[0].config.body.nodes[0]",
    ),
    "unknown node type": (
        lambda: doc([node("a", "teleport")]),
        "$.nodes[0].type",
        "unknown node type 'teleport'; known types: agent, approval, condition, end",
    ),
    "unsupported type_version": (
        lambda: doc([node("a", type_version=2)]),
        "$.nodes[0].type_version",
        "supported: 1",
    ),
    "unknown node field": (
        lambda: doc([node("a", retries=3)]),
        "$.nodes[0].retries",
        "did you mean 'retry'?",
    ),
    "bad config": (
        lambda: doc([node("a", "http")]),
        "$.nodes[0].config",
        "'url' is a required property",
    ),
    "bad nested config": (
        lambda: doc(
            [node("c", "condition", config={"branches": [{"when": "true"}], "default": "no"})]
        ),
        "$.nodes[0].config.branches[0]",
        "'port' is a required property",
    ),
    "reserved branch port": (
        lambda: doc([condition("c", ("error", "true"))]),
        "$.nodes[0].config.branches[0].port",
        "'error' is reserved",
    ),
    "duplicate branch port": (
        lambda: doc([condition("c", ("x", "true"), ("x", "false"))]),
        "$.nodes[0].config.branches[1].port",
        "duplicate branch port 'x'",
    ),
    "dangling edge source": (
        lambda: doc([node("a")], [edge("ghost", "a")]),
        "$.edges[0].from",
        "no node 'ghost' in this graph",
    ),
    "dangling edge target": (
        lambda: doc([node("a")], [edge("a", "ghost")]),
        "$.edges[0].to",
        "no node 'ghost' in this graph",
    ),
    "edge target with a port": (
        lambda: doc([node("a"), node("b")], [edge("a", "b.out")]),
        "$.edges[0].to",
        "names a node, not a port",
    ),
    "unknown edge field": (
        lambda: doc([node("a"), node("b")], [{**edge("a", "b"), "label": "x"}]),
        "$.edges[0].label",
        "unknown field 'label'",
    ),
    "unknown port": (
        lambda: doc([node("a"), node("b")], [edge("a.nope", "b")]),
        "$.edges[0].from",
        "node 'a' (transform) has no port 'nope'; its ports: error, out",
    ),
    "unknown condition port": (
        lambda: doc([condition("c", ("yes", "true")), node("b")], [edge("c.maybe", "b")]),
        "$.edges[0].from",
        "its ports: error, other, yes",
    ),
    "error edge without on_error branch": (
        lambda: doc([node("a"), node("b")], [edge("a.error", "b")]),
        "$.edges[0].from",
        "port 'error' of 'a' needs on_error: branch",
    ),
    "on_error branch without error edge": (
        lambda: doc([node("a", on_error="branch")]),
        "$.nodes[0].on_error",
        "needs at least one edge from 'a.error'",
    ),
    "cycle": (
        lambda: doc([node("a"), node("b")], [edge("a", "b"), edge("b", "a")]),
        "$.edges[1]",
        "cycle outside a loop: a -> b -> a",
    ),
    "unreachable node": (
        lambda: doc([node("s", "start"), node("a"), node("b")], [edge("s", "a")]),
        "$.nodes[2]",
        "node 'b' is unreachable from start node 's'",
    ),
    "two start nodes": (
        lambda: doc(
            [node("s", "start"), node("t", "start"), node("a")], [edge("s", "a"), edge("t", "a")]
        ),
        "$.nodes[1].type",
        "more than one start node",
    ),
    "two end nodes": (
        lambda: doc(
            [node("a"), node("e", "end"), node("f", "end")], [edge("a", "e"), edge("a", "f")]
        ),
        "$.nodes[2].type",
        "more than one end node",
    ),
    "edge into start": (
        lambda: doc([node("s", "start"), node("a")], [edge("s", "a"), edge("a", "s")]),
        "$.edges[1].to",
        "start node 's' cannot have incoming edges",
    ),
    "edge out of end": (
        lambda: doc([node("e", "end"), node("a")], [edge("e", "a")]),
        "$.edges[0].from",
        "end node 'e' cannot have outgoing edges",
    ),
    "self-edge": (lambda: doc([node("a")], [edge("a", "a")]), "$.edges[0]", "self-edge on 'a'"),
    "loop without max_iterations": (
        lambda: doc([node("l", "loop", config={"until": "true", "body": body([node("a")])})]),
        "$.nodes[0].config",
        "loop needs max_iterations (every loop is bounded)",
    ),
    "map bound too high": (
        lambda: doc(
            [
                node(
                    "m",
                    "map",
                    config={"items": "inputs.x", "max_items": 10**6, "body": body([node("a")])},
                )
            ]
        ),
        "$.nodes[0].config.max_items",
        "is greater than the maximum of 100000",
    ),
    "bad condition expression": (
        lambda: doc([condition("c", ("yes", "x (("))]),
        "$.nodes[0].config.branches[0].when",
        "invalid expression: unexpected '('",
    ),
    "bad map items expression": (
        lambda: doc([node("m", "map", config={"items": "((", "body": body([node("a")])})]),
        "$.nodes[0].config.items",
        "invalid expression",
    ),
    "bad loop until expression": (
        lambda: doc([loop("l", body([node("a")]), until="((")]),
        "$.nodes[0].config.until",
        "invalid expression",
    ),
    "bad template in config": (
        lambda: doc([node("a", config={"output": {"text": "{{ bad }}"}})]),
        "$.nodes[0].config.output.text",
        "invalid template: unexpected name 'bad'",
    ),
    "bad template in outputs": (
        lambda: doc([node("a")], outputs={"reply": "{{ bad }}"}),
        "$.outputs.reply",
        "invalid template",
    ),
    "bad template in vars": (
        lambda: doc([node("a")], vars={"v": ["{% if x %}{{ bad }}"]}),
        "$.vars.v[0]",
        "invalid template",
    ),
    "bad template in default": (
        lambda: doc([node("a", on_error="continue", default="{{ bad }}")]),
        "$.nodes[0].default",
        "invalid template",
    ),
    "default without continue": (
        lambda: doc([node("a", default=1)]),
        "$.nodes[0].default",
        "only used with on_error: continue",
    ),
    "bad settings timeout": (
        lambda: doc([node("a")], settings={"timeout": "soon"}),
        "$.settings.timeout",
        "cannot read duration 'soon'",
    ),
    "bad max_concurrency": (
        lambda: doc([node("a")], settings={"max_concurrency": 0}),
        "$.settings.max_concurrency",
        "from 1 to 10000",
    ),
    "bad node timeout": (
        lambda: doc([node("a", timeout="0s")]),
        "$.nodes[0].timeout",
        "must be positive",
    ),
    "bad retry initial": (
        lambda: doc([node("a", retry={"initial": "1x"})]),
        "$.nodes[0].retry.initial",
        "cannot read duration",
    ),
    "bad retry max": (
        lambda: doc([node("a", retry={"max": True})]),
        "$.nodes[0].retry.max",
        "expected a duration",
    ),
    "retry initial above max": (
        lambda: doc([node("a", retry={"initial": "1m", "max": "1s"})]),
        "$.nodes[0].retry.initial",
        "must not exceed retry.max",
    ),
    "bad max_attempts": (
        lambda: doc([node("a", retry={"max_attempts": 0})]),
        "$.nodes[0].retry.max_attempts",
        "from 1 to 100",
    ),
    "bad backoff": (
        lambda: doc([node("a", retry={"backoff": "linear"})]),
        "$.nodes[0].retry.backoff",
        "expected one of fixed, exponential",
    ),
    "retry on a non-retryable type": (
        lambda: doc([{**approval("a"), "retry": {"max_attempts": 2}}]),
        "$.nodes[0].retry",
        "'approval' nodes are not retried",
    ),
    "bad wait duration": (
        lambda: doc([node("w", "wait", config={"duration": "5 minutes"})]),
        "$.nodes[0].config.duration",
        "cannot read duration",
    ),
    "bad approval timeout": (
        lambda: doc([approval("a", timeout="400d")]),
        "$.nodes[0].config.timeout",
        "exceeds the limit of 366 days",
    ),
    "bad on_error": (
        lambda: doc([node("a", on_error="ignore")]),
        "$.nodes[0].on_error",
        "expected one of fail, continue, branch",
    ),
    "bad join": (
        lambda: doc([node("a", join="first")]),
        "$.nodes[0].join",
        "expected one of all, any",
    ),
    "bad requires": (
        lambda: doc([node("a", requires="support")]),
        "$.nodes[0].requires",
        "list of capability names",
    ),
    "body not a mapping": (
        lambda: doc([loop("l", cast(Obj, ["a"]))]),
        "$.nodes[0].config.body",
        "expected a body mapping",
    ),
    "problem inside a body": (
        lambda: doc([loop("l", body([node("Bad")]))]),
        "$.nodes[0].config.body.nodes[0].id",
        "must be a slug",
    ),
    "edge crossing into a body": (
        lambda: doc([loop("l", body([node("a")])), node("b")], [edge("l", "b"), edge("b", "a")]),
        "$.edges[1].to",
        "defined at $.nodes[0].config.body.nodes[0]; edges cannot cross a map/loop body boundary",
    ),
    "edge crossing out of a body": (
        lambda: doc([node("b"), loop("l", body([node("a")], [edge("a", "b")]))], [edge("b", "l")]),
        "$.nodes[1].config.body.edges[0].to",
        "edges cannot cross",
    ),
    "cycle inside a body": (
        lambda: doc([loop("l", body([node("a"), node("b")], [edge("a", "b"), edge("b", "a")]))]),
        "$.nodes[0].config.body.edges[1]",
        "cycle outside a loop: a -> b -> a",
    ),
    "value that is not JSON": (
        lambda: doc([node("w", "wait", config={"until": datetime.date(2030, 1, 1)})]),
        "$.nodes[0].config.until",
        "expected a JSON value, got date",
    ),
    "key that is not a string": (
        lambda: doc([node("a")], vars={True: 1}),
        "$.vars.True",
        "keys must be strings",
    ),
}


@pytest.mark.parametrize(("make", "path", "phrase"), CASES.values(), ids=CASES.keys())
def test_each_problem_is_reported_alone_with_path_and_reason(
    make: Callable[[], object], path: str, phrase: str
) -> None:
    problems = problems_of(make())
    assert [p.path for p in problems] == [path], problems
    assert phrase in problems[0].message


def test_missing_required_fields_are_each_reported() -> None:
    problems = problems_of({"name": "x"})
    assert [(p.path, p.message) for p in problems] == [
        ("$", "missing required field 'schema'"),
        ("$", "missing required field 'id'"),
        ("$", "missing required field 'nodes' (a non-empty list of nodes)"),
    ]


def test_every_problem_is_reported_not_just_the_first() -> None:
    document = doc(
        [node("a"), node("a"), node("t", "teleport"), node("x", config={"output": "{{ bad }}"})],
        [edge("a", "ghost")],
    )
    document["schema"] = "v1"
    problems = problems_of(document)
    assert {p.path for p in problems} == {
        "$.schema",
        "$.nodes[1].id",
        "$.nodes[2].type",
        "$.nodes[3].config.output",
        "$.edges[0].to",
    }
    assert len(problems) == 5


def everything() -> Doc:
    """A valid document using every node type in the catalog."""
    return {
        "schema": "cadenza/v1",
        "id": "everything",
        "name": "Every node type",
        "description": "exercise the whole catalog",
        "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
        "outputs": {"reply": "{{ nodes.shape.output }}"},
        "vars": {"greeting": "hello {{ inputs.name }}"},
        "settings": {"timeout": "1h", "max_concurrency": 100},
        "nodes": [
            node("begin", "start"),
            node(
                "fetch",
                "http",
                config={"method": "GET", "url": "https://example.com/{{ inputs.id }}"},
                retry={"max_attempts": 3, "backoff": "fixed", "initial": "500ms", "max": "2s"},
                timeout="30s",
                on_error="branch",
            ),
            node("fallback", on_error="continue", default={"ok": False}),
            condition("route", ("big", "nodes.fetch.output.size > 10"), default="small"),
            node("pause", "wait", config={"duration": "5m"}),
            {**approval("ask", timeout="1d"), "requires": ["ops"]},
            node(
                "each",
                "map",
                config={
                    "items": "inputs.items",
                    "concurrency": 4,
                    "body": body([node("square", config={"output": "{{ item * item }}"})]),
                },
            ),
            loop("again", body([node("tick"), node("tock")], [edge("tick", "tock")])),
            node("child", "subprocess", config={"process": "other", "version": "latest"}),
            node("shape", config={"output": {"text": "{{ vars.greeting }}"}}, join="any"),
            node("finish", "end"),
        ],
        "edges": [
            edge("begin", "fetch"),
            edge("fetch", "route"),
            edge("fetch.error", "fallback"),
            edge("route.big", "each"),
            edge("route", "pause"),
            edge("pause", "ask"),
            edge("ask.approved", "again"),
            edge("ask.rejected", "shape"),
            edge("each", "shape"),
            edge("again", "child"),
            edge("child", "shape"),
            edge("fallback", "shape"),
            edge("shape", "finish"),
        ],
        "layout": {"begin": {"x": 0, "y": 0}},
    }


def test_valid_document_with_every_node_type_builds_the_model() -> None:
    document = everything()
    definition = parse_definition(document, CHECKS)

    assert (definition.id, definition.name) == ("everything", "Every node type")
    assert (definition.settings.timeout_s, definition.settings.max_concurrency) == (3600.0, 100)
    assert definition.outputs == {"reply": "{{ nodes.shape.output }}"}
    assert definition.document == document
    graph = definition.graph
    assert [n.type for n in graph.nodes] == [
        "start", "http", "transform", "condition", "wait", "approval",
        "map", "loop", "subprocess", "transform", "end",
    ]  # fmt: skip
    fetch = graph.node("fetch")
    assert fetch.retry == RetryPolicy(3, Backoff.FIXED, 0.5, 2.0)
    assert (fetch.timeout_s, fetch.on_error) == (30.0, OnError.BRANCH)
    assert (graph.node("fallback").on_error, graph.node("fallback").default) == (
        OnError.CONTINUE,
        {"ok": False},
    )
    assert graph.node("shape").join is Join.ANY
    assert graph.node("ask").requires == ("ops",)
    each, again = graph.node("each"), graph.node("again")
    assert each.config == {"items": "inputs.items", "concurrency": 4}
    assert each.body is not None
    assert [n.id for n in each.body.nodes] == ["square"]
    assert again.body is not None
    assert again.body.edges == (Edge("tick", "out", "tock"),)
    assert "body" not in again.config
    assert Edge("fetch", "error", "fallback") in graph.edges
    assert compile_plan(definition).root.order[0] == "begin"


def test_plain_edge_sources_resolve_to_the_default_port() -> None:
    graph = parse_definition(everything(), CHECKS).graph
    ports = {(e.source, e.target): e.port for e in graph.edges}
    assert ports[("route", "pause")] == "small"  # the condition's default port
    assert ports[("route", "each")] == "big"
    assert ports[("begin", "fetch")] == "out"
    assert ports[("pause", "ask")] == "out"
    assert ports[("ask", "again")] == "approved"


def test_content_hash_ignores_layout_name_and_description() -> None:
    first = parse_definition(everything(), CHECKS)
    cosmetic = everything() | {"name": "Renamed", "description": "", "layout": {}}
    assert parse_definition(cosmetic, CHECKS).content_hash == first.content_hash
    changed = copy.deepcopy(everything())
    changed["settings"] = {"timeout": "2h"}
    assert parse_definition(changed, CHECKS).content_hash != first.content_hash


def test_name_defaults_to_the_id_and_yaml_style_values_are_copied_as_json() -> None:
    document = doc([node("a")], vars={"pair": ("x", 1)})
    definition = parse_definition(document, CHECKS)
    assert definition.name == "demo"
    assert definition.vars == {"pair": ["x", 1]}
    assert definition.document["vars"] == {"pair": ["x", 1]}


def test_self_referencing_yaml_is_reported_not_followed_forever() -> None:
    looped: list[object] = []
    looped.append(looped)
    problems = problems_of(doc([node("a")], vars={"loop": looped}))
    assert len(problems) == 1
    assert problems[0].path.startswith("$.vars.loop[0][0]")
    assert "nested deeper than 64 levels" in problems[0].message
