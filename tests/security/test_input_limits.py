"""Input limits at the door (issue 9, Medium 7 and scope 3), over a real server.

Inputs nested 300 deep once made the start answer 500 *after* storing the instance, and from
then on every list of the workspace answered 500. Now: too deep or too large is a 422 with the
path and nothing is stored; a node output over the limits fails its task and is not stored;
and the worst shapes that *are* allowed list fine over REST, GraphQL and SSE.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.api.harness import Client, Server, document, serve

MAX_BYTES = 65_536  # a small max_value_bytes so that the largest value fits in one request
DEPTH = 64
OVERRIDES: dict[str, Any] = {"max_value_bytes": MAX_BYTES}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'limits.db'}"


def nested(levels: int, leaf: Any = "x") -> Any:
    """A value with ``levels`` containers: nested(1) == {"a": "x"}."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def echo(process_id: str, output: Any) -> dict[str, Any]:
    return document(
        process_id,
        inputs={"type": "object"},
        nodes=[{"id": "echo", "type": "transform", "config": {"output": output}}],
        outputs={},
    )


async def publish(c: Client, doc: dict[str, Any]) -> None:
    r = await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True})
    assert r.status == 201, r.body


async def start(c: Client, process_id: str, inputs: Any) -> Any:
    return await c.post("/api/v1/processes/instances", {"process_id": process_id, "inputs": inputs})


async def finished(srv: Server, iid: str) -> dict[str, Any]:
    await srv.runtime.engine.wait_finished(iid)
    r = await srv.admin.get(f"/api/v1/processes/instances/{iid}")
    assert r.status == 200, r.body
    body: dict[str, Any] = r.body
    return body


async def lists_answer(srv: Server) -> dict[str, Any]:
    """Every list of the workspace, over REST and GraphQL; each must answer 200."""
    c = srv.admin
    instances = await c.get("/api/v1/processes/instances", params={"limit": "500"})
    assert instances.status == 200, instances.body
    tasks = await c.get("/api/v1/execution/tasks")
    assert tasks.status == 200, tasks.body
    query = "{ instances(limit: 100) { items { id inputs outputs tasks { output detail } } } }"
    gql = await c.post("/graphql", {"query": query})
    assert gql.status == 200, gql.body
    assert "errors" not in gql.body, gql.body
    return {"rest": instances.body["items"], "tasks": tasks.body, "graphql": gql.body["data"]}


async def sse_until_completed(
    c: Client, processes: set[str], ready: asyncio.Event
) -> list[dict[str, Any]]:
    """Events of the workspace from now until an instance of each of ``processes`` completed."""
    headers = {"Authorization": f"Bearer {c.token}"}
    out: list[dict[str, Any]] = []
    waiting = set(processes)
    async with c.session.get(
        c.base + "/api/v1/events/stream",
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=60),
    ) as r:
        assert r.status == 200
        ready.set()
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if not line.startswith("data: "):
                continue
            message = json.loads(line[len("data: ") :])
            out.append(message)
            if message["type"] == "InstanceCompleted":
                waiting.discard(message["process_id"])
            if not waiting:
                return out
    raise AssertionError(f"the stream ended before {waiting} completed")


async def test_inputs_nested_too_deep_get_422_with_the_path_and_nothing_is_stored(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url, **OVERRIDES) as srv:
        await publish(srv.admin, echo("deep", "ok"))
        r = await start(srv.admin, "deep", {"v": nested(300)})
        assert r.status == 422, r.body
        path = "inputs.v" + ".a" * (DEPTH - 1)
        assert r.body["errors"] == [
            {"path": path, "message": f"inputs nested deeper than {DEPTH} levels"}
        ]
        found = await lists_answer(srv)
        assert found["rest"] == []
        assert found["tasks"] == []


async def test_inputs_larger_than_the_limit_get_422_and_the_limit_itself_is_accepted(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url, **OVERRIDES) as srv:
        await publish(srv.admin, echo("big", "ok"))
        overhead = len(json.dumps({"v": ""}, separators=(",", ":")))
        r = await start(srv.admin, "big", {"v": "x" * (MAX_BYTES - overhead + 1)})
        assert r.status == 422, r.body
        assert r.body["errors"] == [
            {
                "path": "inputs",
                "message": f"inputs is {MAX_BYTES + 1} bytes as JSON; the limit is {MAX_BYTES}",
            }
        ]
        ok = await start(srv.admin, "big", {"v": "x" * (MAX_BYTES - overhead)})
        assert ok.status == 201, ok.body
        assert (await finished(srv, ok.body["id"]))["status"] == "completed"


async def test_a_node_output_over_the_limits_fails_its_task_and_is_not_stored(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url, **OVERRIDES) as srv:
        # inputs at the depth limit; the node wraps them twice more
        await publish(srv.admin, echo("wrap", {"a": {"b": "{{ inputs.v }}"}}))
        r = await start(srv.admin, "wrap", {"v": nested(DEPTH - 1)})
        assert r.status == 201, r.body
        detail = await finished(srv, r.body["id"])
        assert detail["status"] == "failed"
        task = next(t for t in detail["tasks"] if t["node_id"] == "echo")
        assert task["status"] == "failed"
        assert task["output"] is None
        assert task["error"] == (
            f"the output nested deeper than {DEPTH} levels (at "
            + "a.b"
            + ".a" * (DEPTH - 2)
            + "); it was not stored"
        )
        await lists_answer(srv)


async def test_the_worst_allowed_shapes_list_over_rest_graphql_and_sse(sqlite_url: str) -> None:
    async with serve(sqlite_url, **OVERRIDES) as srv:
        await publish(srv.admin, echo("deepest", {"copy": "{{ inputs.v }}"}))
        await publish(srv.admin, echo("largest", "{{ inputs.v }}"))
        overhead = len(json.dumps({"v": ""}, separators=(",", ":")))
        runs = {
            "deepest": {"v": nested(DEPTH - 1)},  # inputs: 64 levels; the output: 64 as well
            "largest": {"v": "é" * ((MAX_BYTES - overhead) // 2)},  # 2 bytes each in UTF-8
        }
        ready = asyncio.Event()
        stream = asyncio.create_task(sse_until_completed(srv.admin, set(runs), ready))
        await ready.wait()
        ids = set()
        for process_id, inputs in runs.items():
            r = await start(srv.admin, process_id, inputs)
            assert r.status == 201, r.body
            detail = await finished(srv, r.body["id"])
            assert detail["status"] == "completed", detail["error"]
            ids.add(r.body["id"])
        found = await lists_answer(srv)
        assert {i["id"] for i in found["rest"]} == ids
        assert {i["id"] for i in found["graphql"]["instances"]["items"]} == ids
        outputs = [t["output"] for t in found["tasks"] if t["node_id"] == "echo"]
        assert {"copy": nested(DEPTH - 1)} in outputs
        events = await stream
        assert {e["instance_id"] for e in events if e["type"] == "InstanceStarted"} == ids
        assert {"copy": nested(DEPTH - 1)} in [
            e["data"]["output"] for e in events if e["type"] == "TaskCompleted"
        ]


async def test_a_body_nested_10000_deep_is_a_400_not_a_500(sqlite_url: str) -> None:
    async with serve(sqlite_url, **OVERRIDES) as srv:
        deep = "[" * 10_000 + "]" * 10_000
        body = '{"process_id": "deep", "inputs": {"v": ' + deep + "}}"
        r = await srv.admin.request(
            "POST",
            "/api/v1/processes/instances",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert r.status == 400, r.body
        assert r.body["detail"] == "There was an error parsing the body"
        await lists_answer(srv)
