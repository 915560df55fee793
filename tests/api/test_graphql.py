"""GraphQL at /graphql over a real server: queries, mutations, subscriptions, auth, tenancy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.api.harness import Client, Server, document, serve

from cadenza.application.identity import Principal, Role
from cadenza.application.ports_api import Workspace
from cadenza.bootstrap import build_identity

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def gql(c: Client, query: str, **variables: Any) -> dict[str, Any]:
    r = await c.post("/graphql", {"query": query, "variables": variables})
    assert r.status == 200, r.body
    body: dict[str, Any] = r.body
    return body


async def data(c: Client, query: str, **variables: Any) -> dict[str, Any]:
    body = await gql(c, query, **variables)
    assert "errors" not in body, body["errors"]
    found: dict[str, Any] = body["data"]
    return found


def error_codes(body: Mapping[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def publish(c: Client, doc: dict[str, Any]) -> None:
    saved = await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True})
    assert saved.status == 201, saved.body


def approval_process() -> dict[str, Any]:
    return document(
        "review",
        nodes=[
            {"id": "ask", "type": "approval", "config": {"title": "Ship {{ inputs.name }}?"}},
            {"id": "ship", "type": "transform", "config": {"output": "shipped"}},
        ],
        edges=[{"from": "ask.approved", "to": "ship"}],
        outputs={"result": "{{ nodes.ship.output }}"},
    )


START = """mutation($p: ID!, $in: JSON) {
  startInstance(processId: $p, inputs: $in) { id status processId }
}"""
INSTANCE = """query($id: ID!) {
  instance(id: $id) { id status outputs tasks { nodeId nodeType status output } }
}"""


async def wait_status(c: Client, iid: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        found: dict[str, Any] = (await data(c, INSTANCE, id=iid))["instance"]
        if found["status"] == status or time.monotonic() > deadline:
            assert found["status"] == status, found
            return found
        await asyncio.sleep(0.05)


async def api_key(srv: Server, workspace: str, role: Role, ttl_s: float | None = None) -> str:
    """A key of ``workspace`` (created with it when it does not exist yet)."""
    identity = await build_identity(srv.runtime)
    if await identity.store.workspace(workspace) is None:
        await identity.store.add_workspace(Workspace(workspace, workspace, time.time()))
    admin = await identity.store.user_by_name("admin")
    assert admin is not None
    owner = Principal(workspace, Role.ADMIN, user_id=admin.id)
    _, secret = await identity.create_key(owner, "t", role, ttl_s)
    return secret


@asynccontextmanager
async def socket(
    srv: Server, init: dict[str, Any] | None, *, query: str = "", protocol: str = TRANSPORT_WS
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    url = srv.base.replace("http", "ws", 1) + "/graphql" + query
    async with srv.admin.session.ws_connect(url, protocols=(protocol,)) as ws:
        await ws.send_json({"type": "connection_init", "payload": init or {}})
        yield ws


def bearer(c: Client) -> dict[str, Any]:
    return {"Authorization": f"Bearer {c.token}"}


async def next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
    found: dict[str, Any] = json.loads(msg.data)
    return found


async def subscribe(
    ws: aiohttp.ClientWebSocketResponse, query: str, **variables: Any
) -> AsyncIterator[dict[str, Any]]:
    """Acknowledge, subscribe, then yield each event's payload until ``complete``."""
    ack = await next_message(ws)
    assert ack["type"] == "connection_ack", ack
    await ws.send_json(
        {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )
    while True:
        msg = await next_message(ws)
        if msg["type"] == "complete":
            return
        assert msg["type"] == "next", msg
        yield msg["payload"]


TASK_UPDATES = """subscription($i: ID, $after: String) {
  taskUpdates(instanceId: $i, after: $after) { position type taskId instanceId status data }
}"""
EVENTS = """subscription($after: String) {
  events(after: $after) { type instanceId processId }
}"""


async def test_queries_see_processes_and_a_started_instance(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        await publish(c, document())
        started = (await data(c, START, p="hello", **{"in": {"name": "Ada"}}))["startInstance"]
        assert started["processId"] == "hello"
        done = await wait_status(c, started["id"], "completed")
        assert done["outputs"] == {"greeting": "hello Ada"}
        assert [t["nodeId"] for t in done["tasks"]] == ["start", "greet", "end"]
        assert done["tasks"][1]["output"] == "hello Ada"

        found = await data(
            c,
            """query($i: ID!) {
                 processes { id latest { version status name } versions { version } }
                 process(id: "hello") { version(number: 1) { status document } }
                 instances(status: COMPLETED, processId: "hello") {
                   items { id status } nextCursor }
                 running: instances(status: RUNNING) { items { id } }
                 tasks(instanceId: $i, status: COMPLETED) { nodeId }
                 agents { name status } }""",
            i=started["id"],
        )
        assert found["processes"] == [
            {
                "id": "hello",
                "latest": {"version": 1, "status": "published", "name": "Hello"},
                "versions": [{"version": 1}],
            }
        ]
        assert found["process"]["version"]["document"]["id"] == "hello"
        assert found["instances"] == {
            "items": [{"id": started["id"], "status": "completed"}],
            "nextCursor": None,
        }
        assert found["running"] == {"items": []}
        assert sorted(t["nodeId"] for t in found["tasks"]) == ["end", "greet", "start"]
        assert found["agents"] == []


async def test_instances_are_paged_like_rest(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        await publish(c, document())
        ids = [(await data(c, START, p="hello"))["startInstance"]["id"] for _ in range(3)]
        page = """query($cursor: String) {
          instances(limit: 2, cursor: $cursor) { items { id } nextCursor } }"""
        first = (await data(c, page))["instances"]
        assert len(first["items"]) == 2
        assert first["nextCursor"]
        second = (await data(c, page, cursor=first["nextCursor"]))["instances"]
        assert second["nextCursor"] is None
        seen = [i["id"] for i in first["items"] + second["items"]]
        assert sorted(seen) == sorted(ids)
        bad = await gql(c, page, cursor="not a cursor")
        assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_task_updates_follow_a_running_instance_to_completion(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        await publish(c, approval_process())
        iid = (await data(c, START, p="review", **{"in": {"name": "v2"}}))["startInstance"]["id"]
        nodes: dict[str, str] = {}
        seen: list[tuple[str, str]] = []
        async with socket(srv, bearer(c)) as ws:
            # from the feed's start: what happened before the subscription, then live
            async for payload in subscribe(ws, TASK_UPDATES, i=iid, after="0-0"):
                event = payload["data"]["taskUpdates"]
                assert event["instanceId"] == iid
                assert event["type"].startswith("Task")
                if "node_id" in event["data"]:  # scheduled, waiting, skipped
                    nodes[event["taskId"]] = event["data"]["node_id"]
                node = nodes[event["taskId"]]
                seen.append((event["type"], node))
                if event["type"] == "TaskWaiting" and node == "ask":
                    approve = """mutation($t: ID!) {
                      approveTask(taskId: $t, comment: "ok") { nodeId } }"""
                    decided = await data(c, approve, t=event["taskId"])
                    assert decided["approveTask"]["nodeId"] == "ask"
                if event["type"] == "TaskCompleted" and node == "end":
                    break
        assert ("TaskWaiting", "ask") in seen
        assert seen.index(("TaskCompleted", "ship")) > seen.index(("TaskWaiting", "ask"))
        done = await wait_status(c, iid, "completed")
        assert done["outputs"] == {"result": "shipped"}


async def test_legacy_graphql_ws_and_query_token_work_too(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        await publish(c, document())
        async with socket(srv, None, query=f"?access_token={c.token}", protocol=LEGACY_WS) as ws:
            ack = await next_message(ws)
            assert ack["type"] == "connection_ack"
            await ws.send_json(
                {"id": "1", "type": "start", "payload": {"query": EVENTS, "variables": {}}}
            )
            await asyncio.sleep(0.3)  # the subscription reads from the feed's head on start
            iid = (await data(c, START, p="hello"))["startInstance"]["id"]
            types: list[str] = []
            while "InstanceCompleted" not in types:
                msg = await next_message(ws)
                assert msg["type"] == "data", msg
                event = msg["payload"]["data"]["events"]
                assert event["instanceId"] == iid
                types.append(event["type"])
        assert types[0] == "InstanceStarted"


async def test_requests_without_valid_credentials_get_401(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        expired = await api_key(srv, "default", Role.ADMIN, ttl_s=-1)
        query = {"query": "{ processes { id } }"}
        for who in (srv.anonymous, srv.anonymous.as_("not-a-token"), srv.anonymous.as_(expired)):
            r = await who.post("/graphql", query)
            assert r.status == 401, (who.token, r.status, r.body)
            assert r.headers["Content-Type"] == "application/problem+json"
            r = await who.get("/graphql", params={"query": "{ processes { id } }"})
            assert r.status == 401
        wrong_workspace = await srv.admin.as_(srv.admin.token, "nowhere").post("/graphql", query)
        assert wrong_workspace.status == 403
        ok = await srv.admin.get("/graphql", params={"query": "{ processes { id } }"})
        assert ok.status == 200
        assert ok.body == {"data": {"processes": []}}


@pytest.mark.parametrize(
    "init",
    [None, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}],
)
async def test_sockets_without_valid_credentials_are_refused(
    sqlite_url: str, init: dict[str, Any] | None
) -> None:
    async with serve(sqlite_url) as srv, socket(srv, init) as ws:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4403
    async with serve(sqlite_url) as srv, socket(srv, init, protocol=LEGACY_WS) as ws:
        refused = await next_message(ws)
        assert refused["type"] == "connection_error"


async def test_a_subscription_before_connection_init_is_refused(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        url = srv.base.replace("http", "ws", 1) + "/graphql"
        async with srv.admin.session.ws_connect(url, protocols=(TRANSPORT_WS,)) as ws:
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4401


async def test_workspace_b_sees_nothing_of_workspace_a(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        a = srv.admin
        await publish(a, document())
        a_iid = (await data(a, START, p="hello"))["startInstance"]["id"]
        await wait_status(a, a_iid, "completed")
        b = srv.anonymous.as_(await api_key(srv, "team-b", Role.EDITOR))

        found = await data(b, "{ processes { id } instances { items { id } } tasks { id } }")
        assert found == {"processes": [], "instances": {"items": []}, "tasks": []}
        for query in (
            "query($i: ID!) { instance(id: $i) { id } }",
            "query($i: ID!) { tasks(instanceId: $i) { id } }",
            'query { process(id: "hello") { id } }',
            'mutation { startInstance(processId: "hello") { id } }',
            "mutation($i: ID!) { cancelInstance(id: $i) { id } }",
        ):
            body = await gql(b, query, **({"i": a_iid} if "$i" in query else {}))
            if "tasks" in query:  # a filter, not a lookup: nothing matches
                assert body == {"data": {"tasks": []}}
            else:
                assert error_codes(body) == ["NOT_FOUND"], (query, body)

        # B's stream, replayed from the feed's start, carries only B's own events
        await publish(b, document("mine"))
        b_iid = (await data(b, START, p="mine"))["startInstance"]["id"]
        async with socket(srv, {"Authorization": f"Bearer {b.token}"}) as ws:
            async for payload in subscribe(ws, EVENTS, after="0-0"):
                event = payload["data"]["events"]
                assert (event["instanceId"], event["processId"]) == (b_iid, "mine")
                if event["type"] == "InstanceCompleted":
                    break


async def test_errors_carry_codes_and_roles_are_enforced(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await publish(srv.admin, document())
        viewer = srv.anonymous.as_(await api_key(srv, "default", Role.VIEWER))
        assert (await data(viewer, "{ processes { id } }"))["processes"] == [{"id": "hello"}]
        denied = await gql(viewer, 'mutation { startInstance(processId: "hello") { id } }')
        assert error_codes(denied) == ["FORBIDDEN"]
        assert denied["errors"][0]["extensions"]["status"] == 403
        missing = await gql(srv.admin, '{ instance(id: "nope") { id } }')
        assert error_codes(missing) == ["NOT_FOUND"]
        assert "nope" in missing["errors"][0]["message"]
        invalid = await gql(
            srv.admin, 'mutation { startInstance(processId: "hello", inputs: {name: 3}) { id } }'
        )
        assert error_codes(invalid) == ["BAD_USER_INPUT"]


async def test_query_size_is_limited(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        aliases = " ".join(f"a{i}: processes {{ id }}" for i in range(16))
        too_many = await gql(srv.admin, "{" + aliases + "}")
        assert too_many.get("data") is None
        assert "aliases" in too_many["errors"][0]["message"]
        huge = "{ processes {" + " id" * 2100 + " } }"
        assert "more than 2000 tokens" in (await gql(srv.admin, huge))["errors"][0]["message"]
