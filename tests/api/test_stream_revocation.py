"""Security regression of issue 9: a stream opened with a key or a token ends once the key
is revoked, the session ended, the user disabled or the membership removed (SSE, the events
WebSocket, GraphQL subscriptions). Streams re-check every ``stream_recheck_s``: set short
here, so each test waits for the close itself, not for a guessed duration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.api.harness import Client, Server, document, serve
from tests.api.test_graphql import EVENTS, LEGACY_WS, TRANSPORT_WS, next_message, publish
from tests.api.test_sessions import member

RECHECK = {"stream_recheck_s": 0.05}
DEADLINE = aiohttp.ClientTimeout(total=30)  # a hang fails the test instead of stalling it


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def sse_messages(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """(event name, data) of each SSE message until the server ends the stream."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if "data" in fields:
            yield fields.get("event", "message"), json.loads(fields["data"])
        fields = {}


async def start(c: Client, process_id: str) -> str:
    r = await c.post("/api/v1/processes/instances", {"process_id": process_id, "inputs": {}})
    assert r.status == 201, r.body
    instance_id: str = r.body["id"]
    return instance_id


async def test_a_task_stream_opened_with_a_key_ends_when_the_key_is_revoked(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url, **RECHECK) as srv:
        await publish(srv.admin, document("hello"))
        made = await srv.admin.post("/api/v1/api-keys", {"name": "live", "role": "viewer"})
        key_id, secret = made.body["id"], made.body["secret"]
        seen: list[str] = []
        async with srv.admin.session.get(
            srv.base + "/api/v1/execution/tasks/stream",
            headers={"X-API-Key": secret},
            timeout=DEADLINE,
        ) as r:
            assert r.status == 200
            await start(srv.admin, "hello")
            async for event, body in sse_messages(r):
                seen.append(event)
                if event == "TaskCompleted":
                    revoked = await srv.admin.request("DELETE", f"/api/v1/api-keys/{key_id}")
                    assert revoked.status == 204
                if event == "revoked":
                    assert "revoked" in body["reason"]
        assert "TaskCompleted" in seen
        assert seen[-1] == "revoked"  # the last message; then the server closed the stream


async def test_an_instance_stream_ends_when_its_user_is_disabled(sqlite_url: str) -> None:
    async with serve(sqlite_url, **RECHECK) as srv:
        user_id, viewer = await member(srv.admin, "vic", "viewer")
        await publish(srv.admin, document("hello"))
        instance_id = await start(srv.admin, "hello")
        params = {"instance_id": instance_id, "after": "start", "access_token": str(viewer.token)}
        events: list[str] = []
        async with srv.admin.session.get(
            srv.base + "/api/v1/events/stream", params=params, timeout=DEADLINE
        ) as r:
            assert r.status == 200
            async for event, body in sse_messages(r):
                events.append(event)
                if event == "InstanceCompleted":
                    patch = {"disabled": True}
                    done = await srv.admin.request("PATCH", f"/api/v1/users/{user_id}", patch)
                    assert done.status == 200
                if event == "revoked":
                    assert "session ended" in body["reason"]  # disabling ends them
        assert events[0] == "InstanceStarted"
        assert events[-2:] == ["InstanceCompleted", "revoked"]
        again = await srv.admin.session.get(
            srv.base + "/api/v1/events/stream", params=params, timeout=DEADLINE
        )
        assert again.status == 401  # EventSource's reconnect is refused, so it stops


async def test_the_events_socket_closes_when_its_session_ends(sqlite_url: str) -> None:
    async with serve(sqlite_url, **RECHECK) as srv:
        _, dee = await member(srv.admin, "dee", "viewer")
        url = srv.base.replace("http", "ws", 1) + "/api/v1/events/ws"
        async with srv.admin.session.ws_connect(
            url,
            params={"access_token": str(dee.token)},
            timeout=aiohttp.ClientWSTimeout(ws_close=10),
        ) as ws:
            assert (await dee.post("/api/v1/auth/logout")).status == 204
            msg = await asyncio.wait_for(ws.receive(), 30)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1008
            assert "session ended" in str(msg.extra)


async def graphql_socket(srv: Server, token: str, protocol: str) -> aiohttp.ClientWebSocketResponse:
    url = srv.base.replace("http", "ws", 1) + "/graphql"
    ws = await srv.admin.session.ws_connect(url, protocols=(protocol,))
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert (await next_message(ws))["type"] == "connection_ack"
    return ws


# (protocol, the subscribe message type, the event message type)
PROTOCOLS = [(TRANSPORT_WS, "subscribe", "next"), (LEGACY_WS, "start", "data")]


@pytest.mark.parametrize(("protocol", "subscribe", "event"), PROTOCOLS, ids=["transport", "legacy"])
async def test_a_graphql_subscription_ends_when_the_membership_is_removed(
    sqlite_url: str, protocol: str, subscribe: str, event: str
) -> None:
    async with serve(sqlite_url, **RECHECK) as srv:
        user_id, ed = await member(srv.admin, "ed", "viewer")
        await publish(srv.admin, document("hello"))
        ws = await graphql_socket(srv, str(ed.token), protocol)
        try:
            payload = {"query": EVENTS, "variables": {"after": "0-0"}}
            await ws.send_json({"id": "1", "type": subscribe, "payload": payload})
            await start(srv.admin, "hello")
            first = await next_message(ws)
            assert first["type"] == event, first
            assert first["payload"]["data"]["events"]["type"] == "InstanceStarted"
            path = f"/api/v1/workspaces/default/members/{user_id}"
            assert (await srv.admin.request("DELETE", path)).status == 204
            while True:
                msg = await asyncio.wait_for(ws.receive(), 30)
                if msg.type is not aiohttp.WSMsgType.TEXT:  # later events may come first
                    break
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4403
            assert "not a member" in str(msg.extra)
        finally:
            await ws.close()
