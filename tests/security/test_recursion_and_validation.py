"""A process that starts itself, and validation that stalled the server (issue 9, High 4 and
Medium 6).

- publishing a process whose subprocess nodes lead back to it is a 422 naming the cycle;
- a loop that no publish could see (stored directly here, as by an older version) stops at
  ``max_subprocess_depth`` with a clear error instead of starting children in one batch until
  memory runs out;
- definitions are capped in nodes, and validation runs in a worker thread, not on the loop.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from tests.api.harness import document, serve

from cadenza.application.definitions import INLINE_CHECK_BYTES, Definitions
from cadenza.application.ports import StoredDefinition
from cadenza.bootstrap import SystemClock
from cadenza.domain.definition import content_hash
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import MAX_NODES
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates

DEFINITIONS = "/api/v1/processes/definitions"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'recursion.db'}"


def calling(process_id: str, callee: str, version: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"process": callee}
    if version is not None:
        config["version"] = version
    return document(
        process_id, nodes=[{"id": "call", "type": "subprocess", "config": config}], outputs={}
    )


async def test_publishing_a_process_that_calls_itself_is_refused(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        r = await srv.admin.post(
            DEFINITIONS, {"document": calling("selfish", "selfish"), "publish": True}
        )
        assert r.status == 422, r.body
        assert r.body["errors"] == [
            {
                "path": "$.nodes[0].config.process",
                "message": "subprocess cycle selfish -> selfish: a process cannot start itself, "
                "directly or through other processes",
            }
        ]
        # the draft was saved; publishing it by version is refused the same way
        draft = await srv.admin.post(f"{DEFINITIONS}/selfish/versions/1/publish")
        assert draft.status == 422, draft.body


async def test_two_processes_calling_each_other_cannot_both_be_published(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        first = await srv.admin.post(
            DEFINITIONS, {"document": calling("ping", "pong"), "publish": True}
        )
        assert first.status == 201, first.body  # pong does not exist yet: no cycle
        second = await srv.admin.post(
            DEFINITIONS, {"document": calling("pong", "ping"), "publish": True}
        )
        assert second.status == 422, second.body
        assert second.body["errors"][0]["message"].startswith(
            "subprocess cycle pong -> ping -> pong"
        )


async def test_calling_an_older_pinned_version_of_itself_is_no_cycle(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        plain = await srv.admin.post(
            DEFINITIONS, {"document": document("layered"), "publish": True}
        )
        assert plain.status == 201, plain.body
        pinned = await srv.admin.post(
            DEFINITIONS, {"document": calling("layered", "layered", version=1), "publish": True}
        )
        assert pinned.status == 201, pinned.body


async def test_a_recursion_no_publish_saw_stops_at_the_depth_limit(sqlite_url: str) -> None:
    async with serve(sqlite_url, max_subprocess_depth=3) as srv:
        doc = calling("loops", "loops")
        await srv.runtime.store.put_definition(
            StoredDefinition("loops", 0, content_hash(doc), "published", doc, 0.0)
        )
        r = await srv.admin.post("/api/v1/processes/instances", {"process_id": "loops"})
        assert r.status == 201, r.body
        root = await srv.runtime.engine.wait_finished(r.body["id"])
        assert root.status.value == "failed"
        assert root.error is not None
        assert "subprocess depth limit: 'loops' would run 4 levels deep; the limit is 3" in (
            root.error
        )
        listed = await srv.admin.get("/api/v1/processes/instances")
        assert [i["status"] for i in listed.body["items"]] == ["failed"] * 4


def _chain(n: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "transform", "config": {"output": "x"}} for i in range(n)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return document("chain", nodes=nodes, edges=edges, outputs={})


async def test_a_definition_over_the_node_cap_is_refused_even_to_validate(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url) as srv:
        r = await srv.admin.post(f"{DEFINITIONS}/validate", {"document": _chain(MAX_NODES + 1)})
        assert r.status == 200, r.body
        assert r.body == {
            "valid": False,
            "problems": [
                {
                    "path": "$.nodes",
                    "message": f"{MAX_NODES + 1} nodes (bodies included) exceed the limit of "
                    f"{MAX_NODES} (setting max_definition_nodes)",
                }
            ],
        }
        at_cap = await srv.admin.post(f"{DEFINITIONS}/validate", {"document": _chain(MAX_NODES)})
        assert at_cap.body == {"valid": True, "problems": []}


class _RecordingChecks(JsonSchemaChecks):
    def __init__(self) -> None:
        self.threads: set[int] = set()

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        self.threads.add(threading.get_ident())
        return super().schema(schema, value)


async def test_validation_and_large_input_checks_run_off_the_event_loop(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        checks = _RecordingChecks()
        rt = srv.runtime
        definitions = Definitions(rt.store, JinjaTemplates(), checks, SystemClock())
        doc = {**_chain(3), "inputs": {"type": "object", "properties": {"x": {"type": "string"}}}}
        definition = await definitions.validate(doc)
        assert checks.threads
        assert threading.get_ident() not in checks.threads
        checks.threads.clear()
        large: JSONObject = {"x": "y" * INLINE_CHECK_BYTES}  # over the bound: on a thread
        await definitions.check_inputs_in_thread(definition, large)
        assert checks.threads
        assert threading.get_ident() not in checks.threads
        checks.threads.clear()  # a small input costs microseconds: checked on the loop
        await definitions.check_inputs_in_thread(definition, {"x": "y"})
        assert checks.threads == {threading.get_ident()}


async def test_a_draft_that_calls_its_own_version_cannot_be_test_run(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        saved = await srv.admin.post(DEFINITIONS, {"document": calling("drafty", "drafty", 1)})
        assert saved.status == 201, saved.body
        assert saved.body["version"] == 1
        r = await srv.admin.post(
            "/api/v1/processes/instances", {"process_id": "drafty", "version": 1}
        )
        assert r.status == 422, r.body
        assert r.body["errors"][0]["message"].startswith("subprocess cycle drafty -> drafty")
        listed = await srv.admin.get("/api/v1/processes/instances")
        assert listed.body["items"] == []
