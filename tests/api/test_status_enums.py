"""The status vocabulary is the domain's: OpenAPI and GraphQL expose the domain enums themselves.

One named OpenAPI component per enum, referenced wherever a status appears, so the console's
generated types (and its exhaustive lists, ``ui/src/api/status.ts``) follow the backend; an
unknown status in a filter is a 422 naming the allowed values; GraphQL's enum types are the
domain classes registered with strawberry.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from strawberry.types.base import get_object_definition
from tests.api.harness import document, serve

from cadenza.domain.agent import AgentStatus
from cadenza.domain.definition import DefinitionStatus
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.interfaces.api.graphql import build_schema
from cadenza.interfaces.api.graphql.enums import ENUMS
from cadenza.interfaces.api.graphql.types import Instance, ProcessVersion, Task

STATUS_ENUMS: tuple[type[StrEnum], ...] = (
    InstanceStatus,
    TaskStatus,
    DefinitionStatus,
    AgentStatus,
)
# (response schema, its status enum) and (path, the status enum of its ``status`` filter)
FIELDS = [
    ("InstanceOut", InstanceStatus),
    ("InstanceDetailOut", InstanceStatus),
    ("TaskOut", TaskStatus),
    ("VersionOut", DefinitionStatus),
    ("DefinitionOut", DefinitionStatus),
    ("AgentOut", AgentStatus),
    ("AgentHealth", AgentStatus),
]
FILTERS = [
    ("/api/v1/processes/instances", InstanceStatus),
    ("/api/v1/execution/tasks", TaskStatus),
    ("/api/v1/execution/tasks/stream", TaskStatus),
    ("/api/v1/events/stream", TaskStatus),
]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def values(enum: type[StrEnum]) -> list[str]:
    return [m.value for m in enum]


def ref(enum: type[StrEnum]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{enum.__name__}"}


def objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, at any depth."""
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from objects(child)
    elif isinstance(node, list):
        for child in node:
            yield from objects(child)


async def openapi(sqlite_url: str) -> dict[str, Any]:
    async with serve(sqlite_url) as srv:
        r = await srv.anonymous.get("/openapi.json")
    assert r.status == 200, r.body
    doc: dict[str, Any] = r.body
    return doc


async def test_openapi_has_one_component_per_status_enum_with_the_domain_values(
    sqlite_url: str,
) -> None:
    doc = await openapi(sqlite_url)
    schemas = doc["components"]["schemas"]
    for enum in STATUS_ENUMS:
        assert schemas[enum.__name__]["enum"] == values(enum)
    # spelled once: no other schema inlines the list, no pattern spells it as a regex
    spelled = [tuple(o["enum"]) for o in objects(doc) if "enum" in o]
    assert [spelled.count(tuple(values(e))) for e in STATUS_ENUMS] == [1, 1, 1, 1]
    patterns = [o["pattern"] for o in objects(doc) if "running" in str(o.get("pattern", ""))]
    assert patterns == []


async def test_openapi_status_fields_and_filters_reference_the_components(
    sqlite_url: str,
) -> None:
    doc = await openapi(sqlite_url)
    schemas = doc["components"]["schemas"]
    assert [schemas[name]["properties"]["status"] for name, _ in FIELDS] == [
        ref(enum) for _, enum in FIELDS
    ]
    found = []
    for path, _ in FILTERS:
        (param,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "status"]
        found.append(param["schema"]["anyOf"])
    assert found == [[ref(enum), {"type": "null"}] for _, enum in FILTERS]


def pydantic_choices(enum: type[StrEnum]) -> str:
    """How pydantic lists an enum's values in its error: ``'a', 'b' or 'c'``."""
    quoted = [repr(v) for v in values(enum)]
    return f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"


async def test_an_unknown_status_filter_is_a_422_naming_the_allowed_values(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url) as srv:
        replies = [await srv.admin.get(path, params={"status": "paused"}) for path, _ in FILTERS]
        known = await srv.admin.get("/api/v1/execution/tasks", params={"status": "waiting"})
    assert [(r.status, r.body["errors"]) for r in replies] == [
        (422, [{"path": "query.status", "message": pydantic_choices(enum)}]) for _, enum in FILTERS
    ]
    assert (known.status, known.body) == (200, [])


async def test_a_version_is_published_then_archived_and_never_goes_back(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        saved = await c.post("/api/v1/processes/definitions", {"document": document()})
        base = "/api/v1/processes/definitions/hello/versions/1"
        published = await c.post(f"{base}/publish")
        again = await c.post(f"{base}/publish")
        archived = await c.post(f"{base}/archive")
        back = await c.post(f"{base}/publish")
    assert [r.body["status"] for r in (saved, published, again, archived)] == [
        "draft",
        "published",
        "published",
        "archived",
    ]
    assert (back.status, back.body["detail"]) == (
        409,
        "version 1 is archived; it cannot become published",
    )


def test_graphql_enum_types_are_the_domain_enums() -> None:
    schema = build_schema()
    found = [schema.get_type_by_name(e.__name__) for e in ENUMS]
    assert [getattr(d, "wrapped_cls", None) for d in found] == list(ENUMS)
    assert [[(v.name, v.value) for v in getattr(d, "values", [])] for d in found] == [
        [(m.name, m.value) for m in e] for e in ENUMS
    ]
    # and no other enum type: a status argument cannot be a copy of one
    enums = [line for line in schema.as_str().splitlines() if line.startswith("enum ")]
    assert enums == sorted(f"enum {e.__name__} {{" for e in ENUMS)


def test_graphql_string_status_fields_list_the_domain_values() -> None:
    """The status fields that stay lowercase strings on the wire say which strings."""

    def description(cls: type) -> str | None:
        fields = get_object_definition(cls, strict=True).fields
        (status,) = [f for f in fields if f.python_name == "status"]
        return status.description

    assert [description(c) for c in (Instance, Task, ProcessVersion)] == [
        "running, completed, failed or cancelled",
        "scheduled, running, waiting, completed, failed, skipped or cancelled",
        "draft, published or archived",
    ]
