"""Definition validation: a secret is referenced only as ``{{ secrets.NAME }}`` in an http node's
url, query or headers; anywhere else (or in any other form) is a problem with its path."""

from __future__ import annotations

from typing import Any

import pytest
from tests.checks import RealChecks

from cadenza.domain.errors import DefinitionInvalid, Problem
from cadenza.domain.json import JSONObject
from cadenza.domain.secrets import mentions_secrets, references
from cadenza.domain.validation import parse_definition

ELSEWHERE = (
    "secrets are not available here: a secret can only be used as {{ secrets.NAME }} in an "
    "http node's url, query or headers, where it is put in as the request leaves"
)
MISUSED = (
    "a secret is used only as exactly {{ secrets.NAME }}: no filters, indexes, tests or "
    "expressions on it (the value is put in after rendering)"
)


CHECKS = RealChecks()


def doc(*nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"schema": "cadenza/v1", "id": "p", "nodes": list(nodes), **top}


def http(config: dict[str, Any]) -> dict[str, Any]:
    return {"id": "call", "type": "http", "config": config}


def problems(document: dict[str, Any]) -> list[Problem]:
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition(document, CHECKS)
    return caught.value.problems


def test_http_url_query_and_headers_take_references() -> None:
    config: JSONObject = {
        "url": "https://api.example.com/{{ secrets.PATH_KEY }}/x",
        "query": {"key": "{{secrets.QUERY_KEY}}", "list": ["{{ secrets.OTHER }}"]},
        "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
        "json": {"name": "{{ inputs.name }}"},
    }
    parse_definition(doc(http(config)), CHECKS)  # no problem
    assert references(config) == {"PATH_KEY", "QUERY_KEY", "OTHER", "API_TOKEN"}


@pytest.mark.parametrize(
    ("node", "path"),
    [
        (  # the probe's finding: a filter in a transform showed the value to every viewer
            {"id": "t", "type": "transform", "config": {"output": "{{ secrets.x | reverse }}"}},
            "$.nodes[0].config.output",
        ),
        (
            {"id": "t", "type": "transform", "config": {"output": {"a": ["{{ secrets.x }}"]}}},
            "$.nodes[0].config.output.a[0]",
        ),
        (
            {
                "id": "c",
                "type": "condition",
                "config": {"branches": [{"port": "y", "when": "secrets.x == 'a'"}], "default": "n"},
            },
            "$.nodes[0].config.branches[0].when",
        ),
        (
            {"id": "l", "type": "llm", "config": {"prompt": "say {{ secrets['x'] }}"}},
            "$.nodes[0].config.prompt",
        ),
        (
            http({"url": "https://x.test/", "json": {"k": "{{ secrets.x }}"}}),
            "$.nodes[0].config.json.k",
        ),
        (http({"url": "https://x.test/", "body": "{{ secrets.x }}"}), "$.nodes[0].config.body"),
        (
            {
                "id": "t",
                "type": "tool",
                "config": {
                    "server": "s",
                    "tool": "t",
                    "arguments": {"a": "{% for k in secrets %}{{ k }}{% endfor %}"},
                },
            },
            "$.nodes[0].config.arguments.a",
        ),
        (
            {
                "id": "t",
                "type": "transform",
                "config": {"output": "x"},
                "default": "{{ secrets.x }}",
                "on_error": "continue",
            },
            "$.nodes[0].default",
        ),
    ],
)
def test_a_reference_anywhere_else_is_refused_with_its_path(
    node: dict[str, Any], path: str
) -> None:
    assert problems(doc(node)) == [Problem(path, ELSEWHERE)]


def test_outputs_vars_and_bodies_are_checked_too() -> None:
    inner = {"id": "inner", "type": "transform", "config": {"output": "{{ secrets.x }}"}}
    loop = {
        "id": "again",
        "type": "loop",
        "config": {
            "until": "secrets.x",
            "max_iterations": 2,
            "body": {"nodes": [inner]},
        },
    }
    document = doc(loop, outputs={"o": "{{ secrets.x }}"}, vars={"v": ["{{ secrets.x }}"]})
    assert problems(document) == [
        Problem("$.nodes[0].config.until", ELSEWHERE),
        Problem("$.nodes[0].config.body.nodes[0].config.output", ELSEWHERE),
        Problem("$.outputs.o", ELSEWHERE),
        Problem("$.vars.v[0]", ELSEWHERE),
    ]


@pytest.mark.parametrize(
    "header",
    [
        "{{ secrets.API_TOKEN | reverse }}",
        "{{ secrets.API_TOKEN ~ 'x' }}",
        "{{ secrets['API_TOKEN'] }}",
        "{% if secrets.API_TOKEN %}yes{% endif %}",
        "{{- secrets.API_TOKEN -}}",
    ],
)
def test_in_an_egress_field_only_the_exact_form_is_allowed(header: str) -> None:
    config = {"url": "https://x.test/", "headers": {"X-Token": header}}
    assert problems(doc(http(config))) == [Problem("$.nodes[0].config.headers['X-Token']", MISUSED)]


def test_the_word_secrets_elsewhere_is_no_reference() -> None:
    assert not mentions_secrets("our secrets policy: {{ inputs.secrets }} {{ x['secrets'] }}")
    assert not mentions_secrets("{{ 'secrets' }} and {{ nodes.secrets_table.output }}")
    assert mentions_secrets("{{ secrets }}")
    assert mentions_secrets("secrets.x", expression=True)
