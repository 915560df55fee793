"""Input schemas are an open door no more (issue 9, High 3).

- a remote ``$ref`` is a validation error with its path, and a schema stored before that
  check (put straight into the store here) is refused at start without any request leaving;
- ``pattern: '^(a+)+$'`` against ``aaaa…a!`` answers at once (RE2, linear time) and the
  server stays responsive;
- schemas are checked as schemas: ``type: nonsense`` and ``pattern: '(unclosed'`` are errors
  of ``validate`` with their paths, not a traceback of ``run``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.api.harness import document, serve
from tests.net import free_port

from cadenza.application.definitions import InputsInvalid
from cadenza.application.ports import StoredDefinition
from cadenza.domain.definition import content_hash
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.schema_check import MAX_PROBLEMS, JsonSchemaChecks

REDOS = "^(a+)+$"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'schemas.db'}"


@pytest.fixture
async def schema_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server that would hand out a schema; it records every request it gets."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"type": "string"})

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/x.json", hits
    finally:
        await runner.cleanup()


def with_inputs(process_id: str, schema: dict[str, Any]) -> dict[str, Any]:
    return document(process_id, inputs={"type": "object", **schema}, outputs={})


async def test_a_remote_ref_is_a_validation_error_and_nothing_is_fetched(
    sqlite_url: str, schema_server: tuple[str, list[str]]
) -> None:
    url, hits = schema_server
    schema = {"properties": {"x": {"$ref": url}}}
    async with serve(sqlite_url) as srv:
        r = await srv.admin.post(
            "/api/v1/processes/definitions", {"document": with_inputs("remote", schema)}
        )
        assert r.status == 422, r.body
        assert r.body["errors"] == [
            {
                "path": "$.inputs.properties.x['$ref']",
                "message": f"invalid JSON Schema: reference '{url}' is not local: only '#...' "
                "references to this schema are allowed (nothing is fetched)",
            }
        ]
        # stored before the check existed: the start refuses it, still without a request
        doc = with_inputs("stored", schema)
        await srv.runtime.store.put_definition(
            StoredDefinition("stored", 0, content_hash(doc), "published", doc, 0.0)
        )
        start = await srv.admin.post(
            "/api/v1/processes/instances", {"process_id": "stored", "inputs": {"x": 1}}
        )
        assert start.status == 422, start.body
        assert "the JSON Schema cannot be applied" in start.body["errors"][0]["message"]
        listed = await srv.admin.get("/api/v1/processes/instances")
        assert listed.body["items"] == []
    assert hits == []


async def test_a_catastrophic_pattern_answers_at_once_and_health_stays_up(
    sqlite_url: str,
) -> None:
    schema = {"properties": {"x": {"type": "string", "pattern": REDOS}}}
    async with serve(sqlite_url) as srv:
        saved = await srv.admin.post(
            "/api/v1/processes/definitions",
            {"document": with_inputs("redos", schema), "publish": True},
        )
        assert saved.status == 201, saved.body
        # 2^50 backtracking steps with Python's re; RE2 reads the string once
        attack = {"process_id": "redos", "inputs": {"x": "a" * 50 + "!"}}
        r = await srv.admin.post("/api/v1/processes/instances", attack)
        assert r.status == 422, r.body
        assert r.body["errors"] == [
            {"path": "inputs.x", "message": f"'{'a' * 50}!' does not match '{REDOS}'"}
        ]
        ok = await srv.admin.post(
            "/api/v1/processes/instances", {"process_id": "redos", "inputs": {"x": "aaa"}}
        )
        assert ok.status == 201, ok.body
        assert (await srv.anonymous.get("/health")).status == 200


async def test_a_long_input_against_a_catastrophic_pattern_is_checked_in_linear_time(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url) as srv:
        d = srv.runtime.definitions
        stored = await d.publish(
            with_inputs("linear", {"properties": {"x": {"type": "string", "pattern": REDOS}}})
        )
        definition = d.plan_for(stored).definition
        with pytest.raises(InputsInvalid) as caught:
            d.check_inputs(definition, {"x": "a" * 100_000 + "!"})
        path, message = caught.value.problems[0]
        assert path == ".x"
        assert message == f"'{'a' * 79}…(+99923 characters) does not match '{REDOS}'"


@pytest.mark.parametrize(
    ("schema", "path", "message"),
    [
        (
            {"properties": {"x": {"type": "nonsense"}}},
            "$.inputs.properties.x.type",
            "invalid JSON Schema: 'nonsense' is not valid under any of the given schemas",
        ),
        (
            {"properties": {"x": {"pattern": "(unclosed"}}},
            "$.inputs.properties.x.pattern",
            "invalid JSON Schema: regular expression '(unclosed' is not supported: "
            "missing ): (unclosed",
        ),
    ],
)
async def test_schemas_that_are_not_schemas_fail_validate_with_their_path(
    sqlite_url: str, schema: dict[str, Any], path: str, message: str
) -> None:
    async with serve(sqlite_url) as srv:
        r = await srv.admin.post(
            "/api/v1/processes/definitions/validate", {"document": with_inputs("s", schema)}
        )
        assert r.status == 200, r.body
        assert r.body == {"valid": False, "problems": [{"path": path, "message": message}]}


@pytest.mark.timeout(120)
def test_cadenza_run_refuses_an_invalid_input_schema_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "schema: cadenza/v1\nid: p\ninputs: {type: object, properties: {x: {type: nonsense}}}\n"
        "nodes: [{id: a, type: transform, config: {output: x}}]\n"
    )
    env = {**os.environ, "CADENZA_LOG_JSON": "false"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cadenza",
            "run",
            str(path),
            "-q",
            "--input",
            "x=1",
            "--database-url",
            f"sqlite:///{tmp_path / 'run.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "$.inputs.properties.x.type: invalid JSON Schema" in done.stderr


def test_a_value_with_thousands_of_violations_reports_the_first_hundred() -> None:
    schema: JSONObject = {
        "type": "object",
        "properties": {"x": {"type": "array", "items": {"type": "string"}}},
    }
    problems = JsonSchemaChecks().schema(schema, {"x": list(range(10_000))})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == ("", f"more than {MAX_PROBLEMS} problems")
    assert problems[0] == (".x[0]", "0 is not of type 'string'")


@pytest.mark.timeout(60)
def test_unique_items_over_100000_objects_is_checked_by_hashing() -> None:
    """jsonschema compares every pair of unsortable items: 2,000 objects took 13 s."""
    schema: JSONObject = {
        "type": "object",
        "properties": {"x": {"type": "array", "uniqueItems": True}},
    }
    items: list[JSON] = [{"a": i} for i in range(100_000)]
    checks = JsonSchemaChecks()
    assert checks.schema(schema, {"x": items}) == []
    problems = checks.schema(schema, {"x": [*items, {"a": 5.0}]})  # 5.0 equals 5
    assert [p for p, _ in problems] == [".x"]
    assert problems[0][1].endswith("has non-unique elements")
    assert checks.schema(schema, {"x": [True, 1, [1, 2], [2, 1]]}) == []


@pytest.mark.timeout(60)
def test_enum_of_10000_objects_against_100000_items_is_a_lookup_each() -> None:
    schema: JSONObject = {
        "type": "object",
        "properties": {
            "x": {"type": "array", "items": {"enum": [{"v": i} for i in range(10_000)]}}
        },
    }
    checks = JsonSchemaChecks()
    assert checks.schema(schema, {"x": [{"v": i % 10_000} for i in range(100_000)]}) == []
    problems = checks.schema(schema, {"x": [{"v": 1}, {"v": -1}]})
    assert [p for p, _ in problems] == [".x[1]"]
    assert problems[0][1].startswith("{'v': -1} is not one of [{'v': 0}, {'v': 1},")
