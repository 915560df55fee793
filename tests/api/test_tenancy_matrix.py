"""Cross-workspace matrix: the admin of workspace B cannot read, change, run, stream or
delete anything of workspace A, through any route of the app (enumerated from it), the live
streams (SSE, WebSocket, GraphQL subscriptions), GraphQL or MCP; and A is unchanged after.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import httpx2
import pytest
import pytest_asyncio
from mcp import Client as McpClient
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from tests.api.fixtures import (
    A_SERVER,
    WS_A,
    Endpoint,
    World,
    approval_document,
    build_world,
    endpoints,
    fill,
    matrix_server,
    ok,
    probe,
    product,
    settled,
    start,
    websocket,
)
from tests.api.harness import Client, document

from cadenza.application.identity import Role
from cadenza.interfaces.api.guard import PUBLIC_ROUTES

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Configured for the whole server (see docs/security.md): no workspace owns them, so they are
# not A's to protect. Everything else is, agents and worker assignments included.
SHARED = ("/api/v1/mcp-servers", "/api/v1/providers", "/api/v1/config/settings")
# A PUT of a stored provider or MCP server acts on the caller's own workspace: B putting A's
# name makes B's own item (A's is unchanged: test_config_api checks it), not a reach into A
OWN_SCOPE_WRITES = (
    ("PUT", "/api/v1/config/providers/{provider}"),
    ("PUT", "/api/v1/config/mcp-servers/{server}"),
)


# Bodies that get past validation, so the answer is about the workspace (default: {})
def body_for(world: World, e: Endpoint) -> Any:
    return {
        ("PUT", "/api/v1/workspaces/{workspace_id}/members/{user_id}"): {"role": "viewer"},
        ("PATCH", "/api/v1/users/{user_id}"): {"disabled": True},
        ("PUT", "/api/v1/workspaces/{workspace_id}/secrets/{name}"): {"value": "forged by B"},
        ("PUT", "/api/v1/workspaces/{workspace_id}/redaction"): {"enabled": False},
        ("POST", "/api/v1/workers/assignments/{assignment_id}/fail"): {"error": "forged by B"},
        ("POST", "/api/v1/workers/assignments/{assignment_id}/complete"): {"output": "forged"},
        ("POST", "/api/v1/processes/instances/{instance_id}/signal"): {
            "task_id": world.a.approval_task,
            "payload": {"decision": "approve"},
        },
    }.get((e.method, e.path), {} if e.method in ("POST", "PUT", "PATCH") else None)


QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/v1/processes/definitions/{process_id}/diff"): {"from": "1", "to": "2"},
}
# query parameters of list routes that take an id of A
ID_QUERIES = ("process_id", "instance_id", "q", "search")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    db = tmp_path_factory.mktemp("tenancy") / "tenancy.db"
    async with matrix_server(f"sqlite:///{db}") as srv:
        w = await build_world(srv)
        w.notes["a-state"] = await a_state(w)  # compared by the last test
        yield w


def owned(e: Endpoint) -> bool:
    """Routes over workspace-owned data: not public, not shared, not a protocol endpoint."""
    return (
        (e.method, e.path) not in PUBLIC_ROUTES
        and not e.path.startswith(SHARED)
        and e.path not in ("/graphql", "/mcp")
        and e.method not in ("WEBSOCKET", "MOUNT")
    )


def leaks(world: World, payload: Any) -> list[str]:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return [s for s in [*world.a.secrets(), WS_A] if s in text]


async def a_state(world: World) -> dict[str, Any]:
    """What B must not be able to change: A's versions, instances, tasks, key and members."""
    admin, a = world.members[Role.ADMIN], world.a
    state: dict[str, Any] = {}
    for pid in (a.process_id, a.hello_id, a.broken_id, a.worker_id):
        rows = ok(await admin.get(f"/api/v1/processes/definitions/{pid}/versions"))
        state[pid] = sorted((v["version"], v["status"], v["content_hash"]) for v in rows)
    for iid in (a.running, a.completed, a.failed, a.working):
        body = ok(await admin.get(f"/api/v1/processes/instances/{iid}"))
        state[iid] = [body["status"], sorted((t["id"], t["status"]) for t in body["tasks"])]
    keys = ok(await admin.get("/api/v1/api-keys"))
    state["keys"] = sorted((k["id"], k.get("revoked", False)) for k in keys)
    members = ok(await admin.get(f"/api/v1/workspaces/{WS_A}/members"))
    state["members"] = sorted((m["user_id"], m["role"]) for m in members)
    state["workspace"] = ok(await admin.get(f"/api/v1/workspaces/{WS_A}"))
    normal: dict[str, Any] = json.loads(json.dumps(state))  # tuples as lists
    return normal


# ---- by id -----------------------------------------------------------------------------------
async def test_a_can_reach_its_own_ids(world: World) -> None:
    """The control: every GET by id answers A's admin, so B's 404s below mean something."""
    admin = world.members[Role.ADMIN]
    wrong = []
    for e in endpoints(world.srv.app):
        if e.method == "GET" and e.params and owned(e):
            path = fill(e.path, world.a.values())
            r = await probe(admin, "GET", path, params=QUERIES.get((e.method, e.path)))
            if r.status != 200:
                wrong.append(f"{e}: {r.status} {r.body}")
    assert not wrong, "\n".join(wrong)


async def test_b_cannot_reach_anything_of_a_by_id(world: World) -> None:
    checked, wrong = 0, []
    for e in endpoints(world.srv.app):
        if not (e.params and owned(e)) or (e.method, e.path) in OWN_SCOPE_WRITES:
            continue
        body = body_for(world, e)
        for values in product(world.a.variants(), e.params):
            path = fill(e.path, values)
            r = await probe(
                world.b_admin, e.method, path, json=body, params=QUERIES.get((e.method, e.path))
            )
            checked += 1
            if r.status == 422:
                wrong.append(f"{e.method} {path}: 422, give the route a valid body ({r.body})")
            elif r.status not in (403, 404):
                wrong.append(f"{e.method} {path}: {r.status} {r.body}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 40


# ---- lists and writes without ids ------------------------------------------------------------
async def _documented_queries(world: World) -> dict[str, list[str]]:
    schema = ok(await world.srv.anonymous.get("/openapi.json"))
    found: dict[str, list[str]] = {}
    for path, ops in schema["paths"].items():
        params = ops.get("get", {}).get("parameters", [])
        found[path] = [p["name"] for p in params if p["in"] == "query"]
    return found


async def test_b_lists_show_nothing_of_a(world: World) -> None:
    queries = await _documented_queries(world)
    a = world.a
    by_name = {
        "process_id": [a.process_id, a.hello_id, a.broken_id, a.worker_id],
        "instance_id": [a.running, a.completed, a.failed, a.working],
        "q": [a.running[:12], "a-"],
        "search": [a.running[:12], "a-"],
    }
    wrong, checked = [], 0
    for e in endpoints(world.srv.app):
        if e.method != "GET" or e.params or not owned(e) or "stream" in e.path:
            continue
        variants: list[dict[str, str] | None] = [None]
        for name in queries.get(e.path, []):
            if name in ID_QUERIES:
                variants += [{name: v} for v in by_name[name]]
        for params in variants:
            r = await probe(world.b_admin, "GET", e.path, params=params)
            checked += 1
            if r.status >= 500 or r.status == 401 or (r.status < 300 and leaks(world, r.body)):
                wrong.append(f"GET {e.path} {params or ''}: {r.status} {leaks(world, r.body)}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 20


async def test_b_cannot_run_or_overwrite_a_processes(world: World) -> None:
    a, b = world.a, world.b_admin
    for pid in (a.process_id, a.hello_id, a.broken_id, a.worker_id):
        for version in (None, a.published, a.draft):
            body: dict[str, Any] = {"process_id": pid}
            if version is not None:
                body["version"] = version
            r = await b.post("/api/v1/processes/instances", body)
            assert r.status == 404, (pid, version, r.status, r.body)
    # process ids are global: B cannot take A's, and learns no more than that it is taken
    for doc, publish in (
        (document(a.hello_id, name="Hijack"), False),
        (approval_document(a.process_id), True),
    ):
        r = await b.post("/api/v1/processes/definitions", {"document": doc, "publish": publish})
        assert r.status == 409, r.body
        assert not leaks(world, {k: v for k, v in r.body.items() if k != "detail"})
    r = await b.post(
        "/api/v1/api-keys", {"name": "sneaky", "role": "admin"}, headers={"X-Workspace": WS_A}
    )
    assert r.status in (403, 404), r.body


# ---- live streams ----------------------------------------------------------------------------
async def _sse(c: Client, path: str, seen: list[str], ready: asyncio.Event, **kw: Any) -> None:
    headers = {"Authorization": f"Bearer {c.token}", "X-Workspace": c.workspace or ""}
    headers.update(kw.pop("headers", {}))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with c.session.get(c.base + path, headers=headers, timeout=timeout, **kw) as r:
        assert r.status == 200, await r.text()
        ready.set()
        async for line in r.content:
            if line.startswith(b"data:"):
                seen.append(line.decode())


async def _socket(c: Client, path: str, seen: list[str], ready: asyncio.Event) -> None:
    got = await websocket(c, path, {"Authorization": f"Bearer {c.token}"})
    assert not isinstance(got, int), got
    ready.set()
    try:
        async for msg in got:
            seen.append(str(msg.data))
    finally:
        await got.close()


async def _graphql_subscription(
    c: Client, field: str, seen: list[str], ready: asyncio.Event
) -> None:
    got = await websocket(c, "/graphql")
    assert not isinstance(got, int), got
    try:
        auth = {"Authorization": f"Bearer {c.token}", "X-Workspace": c.workspace}
        await got.send_json({"type": "connection_init", "payload": auth})
        ack = await got.receive_json(timeout=10)
        assert ack["type"] == "connection_ack", ack
        query = f'subscription {{ {field}(after: "0-0") {{ id type instanceId processId data }} }}'
        await got.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        ready.set()
        async for msg in got:
            seen.append(str(msg.data))
    finally:
        await got.close()


async def test_b_streams_nothing_of_a(world: World) -> None:
    """B subscribes every way there is (from now, and replaying the whole history); A runs
    an instance, then B does. B's streams carry B's instance and nothing of A's."""
    b, a_admin = world.b_admin, world.members[Role.ADMIN]
    token = b.token or ""
    streams: dict[str, list[str]] = {}
    jobs: dict[str, Callable[[list[str], asyncio.Event], Coroutine[Any, Any, None]]] = {
        "SSE events": lambda s, r: _sse(b, "/api/v1/events/stream", s, r),
        "SSE events replayed": lambda s, r: _sse(
            b, "/api/v1/events/stream", s, r, headers={"Last-Event-ID": "0-0"}
        ),
        "SSE tasks replayed": lambda s, r: _sse(
            b, "/api/v1/execution/tasks/stream", s, r, params={"after": "0-0"}
        ),
        "SSE filtered on A's process": lambda s, r: _sse(
            b, "/api/v1/events/stream", s, r, params={"process_id": world.a.hello_id}
        ),
        "WebSocket": lambda s, r: _socket(b, f"/api/v1/events/ws?access_token={token}", s, r),
        "WebSocket replayed": lambda s, r: _socket(
            b, f"/api/v1/events/ws?access_token={token}&after=0-0", s, r
        ),
        "GraphQL events": lambda s, r: _graphql_subscription(b, "events", s, r),
        "GraphQL taskUpdates": lambda s, r: _graphql_subscription(b, "taskUpdates", s, r),
    }
    tasks = []
    for name, job in jobs.items():
        streams[name], ready = [], asyncio.Event()
        task = asyncio.create_task(job(streams[name], ready))
        tasks.append(task)
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        assert ready.is_set(), f"{name} did not open: {task.exception() if task.done() else ''}"
    try:
        a_new = await start(a_admin, world.a.hello_id)
        await settled(a_admin, a_new, "completed")
        b_new = await start(b, world.b_process)
        await settled(b, b_new, "completed")

        async def delivered() -> None:
            while not all(
                any(b_new in m and "TaskCompleted" in m for m in seen)
                for name, seen in streams.items()
                if "filtered" not in name
            ):
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(delivered(), 15)
        except TimeoutError:
            failed = [t.exception() for t in tasks if t.done()]
            short = {n: len(seen) for n, seen in streams.items()}
            raise AssertionError(f"B's own events did not arrive: {short} {failed}") from None
        await asyncio.sleep(0.3)  # room for anything late
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for name, seen in streams.items():
        found = [m for m in seen if a_new in m or leaks(world, m)]
        assert not found, f"{name} delivered A's events to B: {found[:3]}"
    assert streams["SSE filtered on A's process"] == []
    r = await probe(
        b, "GET", "/api/v1/events/stream", params={"instance_id": a_new, "after": "start"}
    )
    assert r.status == 404, r.status


# ---- GraphQL ---------------------------------------------------------------------------------
_INTROSPECT = """{ __schema { queryType { name } mutationType { name } types { name kind
  fields { name args { name type { kind name ofType { kind name ofType { kind name } } } }
  type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"""


def _named(t: dict[str, Any]) -> dict[str, Any]:
    while t.get("ofType"):
        t = t["ofType"]
    return t


def _selection(types: dict[str, Any], t: dict[str, Any], depth: int = 0) -> str:
    named = _named(t)
    if named["kind"] != "OBJECT":
        return ""
    parts = []
    for f in types[named["name"]]["fields"] or []:
        if any(arg["type"]["kind"] == "NON_NULL" for arg in f["args"]):
            continue
        inner = _named(f["type"])
        if inner["kind"] in ("SCALAR", "ENUM"):
            parts.append(f["name"])
        elif inner["kind"] == "OBJECT" and depth < 2:
            sub = _selection(types, f["type"], depth + 1)
            if sub:
                parts.append(f"{f['name']} {sub}")
    return "{ " + " ".join(parts or ["__typename"]) + " }"


async def _graphql(c: Client, query: str) -> dict[str, Any]:
    r = await c.post("/graphql", {"query": query})
    assert r.status == 200, (query, r.status, r.body)
    body: dict[str, Any] = r.body
    return body


async def test_graphql_gives_b_nothing_of_a(world: World) -> None:
    if ("POST", "/graphql") not in {(e.method, e.path) for e in endpoints(world.srv.app)}:
        pytest.skip("GraphQL is not mounted")
    b, a = world.b_admin, world.a
    schema = (await _graphql(b, _INTROSPECT))["data"]["__schema"]
    types = {t["name"]: t for t in schema["types"]}
    ids = a.ids()
    checked, wrong = 0, []
    for root in ("queryType", "mutationType"):
        if not schema[root]:
            continue
        op = "query" if root == "queryType" else "mutation"
        for f in types[schema[root]["name"]]["fields"]:
            required = [arg for arg in f["args"] if arg["type"]["kind"] == "NON_NULL"]
            sel = _selection(types, f["type"])
            if not required:
                calls = [f"{op} {{ {f['name']} {sel} }}"]
            elif all(_named(arg["type"])["name"] == "ID" for arg in required):
                calls = [
                    f"{op} {{ {f['name']}("
                    + ", ".join(f'{arg["name"]}: "{v}"' for arg in required)
                    + f") {sel} }}"
                    for v in ids
                ]
            else:
                continue
            for query in calls:
                if op == "mutation" and not required:
                    continue
                body = await _graphql(b, query)
                checked += 1
                if leaks(world, body.get("data")) or (required and not body.get("errors")):
                    wrong.append(f"{query}: {body}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 30


# ---- MCP -------------------------------------------------------------------------------------
async def test_mcp_gives_b_nothing_of_a(world: World) -> None:
    if ("POST", "/mcp") not in {(e.method, e.path) for e in endpoints(world.srv.app)}:
        pytest.skip("MCP is not mounted")
    headers = {"Authorization": f"Bearer {world.b_key_secret}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        McpClient(streamable_http_client(world.srv.base + "/mcp", http_client=http)) as client,
    ):
        names = [t.name for t in (await client.list_tools()).tools]
        assert names == [world.b_process], names
        for pid in (world.a.hello_id, world.a.process_id):
            try:
                result = await client.call_tool(pid, {})
            except MCPError:
                continue
            assert result.is_error, result


async def test_the_mcp_page_shows_b_no_mcp_server_of_a(world: World) -> None:
    """``/mcp-servers`` is shared (the environment's servers) but also lists the caller's
    workspace's own stored servers: A's is listed to A, and B can neither see nor reach it."""
    applier = world.srv.runtime.applier
    assert applier is not None
    await applier.reload()  # A's server is held by the process now (as name#workspace)
    admin = world.members[Role.ADMIN]
    mine = {s["name"]: s["scope"] for s in ok(await admin.get("/api/v1/mcp-servers"))}
    assert mine.get(A_SERVER) == "workspace", mine  # the control
    # A's own (never started) server is A's to reach: it is unavailable, not unknown
    assert (await admin.get(f"/api/v1/mcp-servers/{A_SERVER}/tools")).status == 503
    listed = ok(await world.b_admin.get("/api/v1/mcp-servers"))
    assert not leaks(world, listed), listed
    for name in (A_SERVER, f"{A_SERVER}%23{WS_A}"):
        r = await world.b_admin.get(f"/api/v1/mcp-servers/{name}/tools")
        assert r.status == 404, (name, r.status, r.body)
        r = await world.b_admin.post(f"/api/v1/mcp-servers/{name}/tools/get_time/approve")
        assert r.status == 403, (name, r.status, r.body)


# ---- agents and workers ----------------------------------------------------------------------
async def test_b_cannot_act_as_a_worker_of_a(world: World) -> None:
    r = await world.b_admin.post(
        "/api/v1/workers/poll", {"agent_id": world.a.agent_id, "timeout_s": 0}
    )
    assert r.status == 404, r.body
    r = await world.b_admin.post(f"/api/v1/agents/{world.a.agent_id}/heartbeat")
    assert r.status == 404, r.body


async def test_a_worker_of_b_gets_no_task_of_a(world: World) -> None:
    """B registers a worker with the capability A's tasks need, while A's own worker is busy
    (capacity 1, one open assignment): A's new task waits for A's worker, B gets nothing."""
    b = world.b_admin
    body = {"name": "b-worker", "type": "worker", "capabilities": ["a-capability"]}
    agent = ok(await b.post("/api/v1/agents/register", body), 201)
    polling = asyncio.create_task(
        b.post("/api/v1/workers/poll", {"agent_id": agent["id"], "timeout_s": 2})
    )
    await asyncio.sleep(0.2)
    a_admin = world.members[Role.ADMIN]
    extra = {"process_id": world.a.worker_id, "inputs": {"secret": "only-for-team-a"}}
    ok(await a_admin.post("/api/v1/processes/instances", extra), 201)
    r = await polling
    assert r.status == 204, r.body
    assert not leaks(world, r.body)


# ---- afterwards ------------------------------------------------------------------------------
async def test_a_is_unchanged(world: World) -> None:
    """Runs last: whatever B tried above, A's data is as it was."""
    assert await a_state(world) == world.notes["a-state"]
    assert (
        ok(await world.members[Role.ADMIN].get(f"/api/v1/execution/tasks/{world.a.approval_task}"))[
            "status"
        ]
        == "waiting"
    )
    key = world.client(world.a.key_secret)
    assert (await key.get("/api/v1/processes/instances")).status == 200
    # A's worker still holds its assignment, and finishing it is still A's to do
    admin = world.members[Role.ADMIN]
    done = await admin.post(
        f"/api/v1/workers/assignments/{world.a.assignment_id}/complete", {"output": "by A"}
    )
    assert done.status == 200, done.body
    finished = await settled(admin, world.a.working, "completed")
    assert finished["outputs"] == {"result": "by A"}, finished
