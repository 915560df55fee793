"""The pure-node registry matches the catalogue, and templates say when they render inline."""

from __future__ import annotations

from cadenza.application.nodes.pure import PURE_NODES, runs_inline
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.nodetypes import NODE_TYPES
from cadenza.infrastructure.templating import JinjaTemplates


def _node(node_type: str, config: JSONObject) -> Node:
    return Node(id="n", type=node_type, config=config)


def test_every_pure_node_type_has_exactly_one_registry_entry() -> None:
    assert set(PURE_NODES) == {name for name, t in NODE_TYPES.items() if t.pure}


def test_lookups_render_inline_and_loops_or_calls_do_not() -> None:
    templates = JinjaTemplates()
    try:
        assert templates.renders_inline({"a": "{{ inputs.x }}", "b": "plain"}, [])
        assert templates.renders_inline(None, ["nodes.a.output.x > 10"])
        assert not templates.renders_inline("{% for i in range(3) %}{{ i }}{% endfor %}", [])
        assert not templates.renders_inline(None, ["inputs.items | map('upper') | list"])
        assert templates.renders_inline("{{ broken", [])  # fails at once, on the caller's thread
    finally:
        templates.close()


def test_only_pure_nodes_with_inline_templates_run_in_the_decision_step() -> None:
    templates = JinjaTemplates()
    try:
        assert runs_inline(templates, _node("transform", {"output": "{{ inputs.x }}"}))
        assert not runs_inline(templates, _node("transform", {"output": "{{ range(9)|list }}"}))
        branches: list[JSON] = [{"port": "p", "when": "inputs.x == 1"}]
        assert runs_inline(templates, _node("condition", {"branches": branches, "default": "q"}))
        assert not runs_inline(templates, _node("http", {"url": "http://x"}))
    finally:
        templates.close()
