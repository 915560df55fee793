"""The published ``cadenza/v1`` JSON Schema: committed file, examples, agreement with validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from jsonschema import Draft202012Validator

import cadenza
from cadenza.domain.json import JSONObject
from cadenza.domain.nodetypes import NODE_TYPES
from cadenza.domain.schema import definition_json_schema
from cadenza.domain.validation import TOP_FIELDS, parse_definition
from cadenza.domain.validation_nodes import NODE_FIELDS, RETRY_FIELDS
from cadenza.infrastructure.schema_check import JsonSchemaChecks

SCHEMA_FILE = Path(cadenza.__file__).parent / "schemas" / "cadenza-v1.schema.json"
EXAMPLES = sorted(
    path
    for pattern in ("*.yaml", "*.yml", "*.json")
    for path in (Path(__file__).resolve().parents[2] / "examples").glob(pattern)
)

TRIAGE = """
schema: cadenza/v1
id: support-triage
name: Support triage
inputs: {type: object, properties: {ticket: {type: string}}, required: [ticket]}
outputs: {reply: "{{ nodes.draft.output.text }}"}
settings: {timeout: 1h, max_concurrency: 100}
nodes:
  - id: classify
    type: http
    config: {method: POST, url: "https://classifier.example/{{ inputs.ticket }}"}
    retry: {max_attempts: 3, backoff: exponential, initial: 1s, max: 30s}
    timeout: 30s
    on_error: fail
  - id: route
    type: condition
    config: {branches: [{port: bug, when: "nodes.classify.output.label == 'bug'"}], default: other}
  - id: draft
    type: transform
    requires: [support]
    config: {output: {text: "Thanks for {{ inputs.ticket }}"}}
  - id: approve
    type: approval
    config: {title: "Send reply?", timeout: 24h}
edges:
  - {from: classify, to: route}
  - {from: route.bug, to: draft}
  - {from: route.other, to: draft}
  - {from: draft, to: approve}
layout: {classify: {x: 80, y: 120}}
"""

BATCH = """
schema: cadenza/v1
id: batch
nodes:
  - {id: begin, type: start}
  - id: each
    type: map
    config:
      items: inputs.rows
      concurrency: 8
      max_items: 500
      body:
        nodes:
          - {id: enrich, type: http, config: {url: "https://api.example/{{ item.id }}"}}
          - {id: keep, type: transform, config: {output: "{{ nodes.enrich.output }}"}}
        edges: [{from: enrich, to: keep}]
  - id: poll
    type: loop
    config:
      until: nodes.check.output.done
      max_iterations: 10
      body:
        nodes:
          - {id: check, type: http, config: {url: "https://api.example/status"}}
          - {id: nap, type: wait, config: {duration: 30s}}
        edges: [{from: check, to: nap}]
  - {id: child, type: subprocess, config: {process: report, version: 2}}
  - {id: finish, type: end}
edges:
  - {from: begin, to: each}
  - {from: each, to: poll}
  - {from: poll, to: child}
  - {from: child, to: finish}
"""


class _AcceptAllSyntax(JsonSchemaChecks):
    def template(self, text: str) -> str | None:
        return None

    def expression(self, text: str) -> str | None:
        return None


def _load(text: str) -> JSONObject:
    return cast(JSONObject, yaml.safe_load(text))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schema_file_is_the_generated_schema() -> None:
    expected = json.dumps(definition_json_schema(), sort_keys=True, indent=2) + "\n"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, "run scripts/gen_schema.py"


def test_schema_covers_exactly_the_fields_validation_accepts() -> None:
    schema = definition_json_schema()
    defs = cast(dict[str, JSONObject], schema["$defs"])
    assert tuple(cast(JSONObject, schema["properties"])) == TOP_FIELDS
    assert tuple(cast(JSONObject, defs["retry"]["properties"])) == RETRY_FIELDS
    for name in NODE_TYPES:
        assert tuple(cast(JSONObject, defs[f"node.{name}"]["properties"])) == NODE_FIELDS


@pytest.mark.parametrize("text", [TRIAGE, BATCH], ids=["triage", "batch"])
def test_examples_validate_against_the_schema_and_parse(
    text: str, validator: Draft202012Validator
) -> None:
    document = _load(text)
    assert list(validator.iter_errors(document)) == []
    assert parse_definition(document, _AcceptAllSyntax()).id == document["id"]


@pytest.mark.skipif(not EXAMPLES, reason="no example documents in examples/")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_files_validate_against_the_schema_and_parse(
    path: Path, validator: Draft202012Validator
) -> None:
    document = _load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
    assert [e.message for e in validator.iter_errors(document)] == []
    assert parse_definition(document, _AcceptAllSyntax()).id == document["id"]


# Each edit breaks the triage example in one way. YAML loads as Any, which keeps the edits short.
INVALID: dict[str, Callable[[Any], None]] = {
    "unknown node type": lambda d: d["nodes"][0].update(type="llm"),
    "bad duration": lambda d: d["settings"].update(timeout="soon"),
    "bad node id": lambda d: d["nodes"][1].update(id="Route"),
    "unknown edge field": lambda d: d["edges"][0].update(label="x"),
    "wrong schema": lambda d: d.update(schema="cadenza/v2"),
    "no nodes": lambda d: d.update(nodes=[]),
    "bad config": lambda d: d["nodes"][3].update(config={"timeout": "1h"}),
}


@pytest.mark.parametrize("edit", INVALID.values(), ids=INVALID.keys())
def test_invalid_documents_fail_the_schema(
    edit: Callable[[Any], None], validator: Draft202012Validator
) -> None:
    document = yaml.safe_load(TRIAGE)
    edit(document)
    assert not validator.is_valid(document)


def test_loop_body_is_checked_recursively_by_the_schema(validator: Draft202012Validator) -> None:
    document = yaml.safe_load(BATCH)
    document["nodes"][2]["config"]["body"]["nodes"][0]["type"] = "task"
    assert not validator.is_valid(document)
