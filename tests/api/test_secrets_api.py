"""Workspace secrets over the real API: who may set and list them, that no route gives a value
back, that they are sealed at rest, and that an ``http`` node sends them while nothing it
reports (output, error, journal, task rows) carries them — the two probe findings of issue 9."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from tests.api.fixtures import ok
from tests.api.harness import Client, Server, serve
from tests.net import any_route_server

from cadenza.domain.json import JSONObject

VALUE = "s3cr3t-Tok3n/+=value-91"  # '/', '+' and '=' so that its encodings differ from it
WS = "default"


def _forms(value: str) -> list[str]:
    return [
        value,
        value[::-1],
        base64.b64encode(value.encode()).decode().rstrip("="),
        quote(value, safe=""),
    ]


def assert_clean(what: str, payload: Any) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    found = [form for form in _forms(VALUE) if form in text]
    assert not found, f"{what} holds the secret as {found}: {text[:500]}"


class Peer:
    """A local HTTP server: /echo answers with what it got (headers reversed and encoded too),
    /fail answers 500 with the request's path and headers in the body."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        headers = dict(request.headers)
        self.received.append({"path": request.path, **headers})
        token = headers.get("X-Token", "")
        echo = {
            "path": request.path,
            "token": token,
            "reversed": token[::-1],
            "b64": base64.b64encode(token.encode()).decode(),
        }
        status = 500 if request.path.startswith("/fail") else 200
        return web.json_response(echo, status=status)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    async with any_route_server(p.handle) as p.url:
        yield p


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[Server]:
    url = f"sqlite:///{tmp_path / 'secrets.db'}"
    async with serve(url, egress_allowed_hosts=["127.0.0.1"]) as server:
        yield server


def http_doc(process_id: str, config: JSONObject) -> dict[str, Any]:
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "nodes": [{"id": "call", "type": "http", "config": config, "retry": {"max_attempts": 1}}],
        "outputs": {"result": "{{ nodes.call.output }}"},
    }


async def put_secret(c: Client, name: str, value: str, workspace: str = WS) -> Any:
    return await c.request(
        "PUT", f"/api/v1/workspaces/{workspace}/secrets/{name}", {"value": value}
    )


async def member(srv: Server, username: str, role: str, workspace: str = WS) -> Client:
    password = "member-password-123"
    body = {"username": username, "password": password}
    ok(await srv.admin.post("/api/v1/users", body), 201)
    path = f"/api/v1/workspaces/{workspace}/members/{username}"
    ok(await srv.admin.request("PUT", path, {"role": role}))
    logged = await srv.anonymous.login(username, password)
    return logged.as_(logged.token, workspace)


async def run(srv: Server, c: Client, doc: dict[str, Any]) -> dict[str, Any]:
    """Publish and start ``doc`` as ``c``; the finished instance's detail."""
    ok(await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True}), 201)
    started = ok(await c.post("/api/v1/processes/instances", {"process_id": doc["id"]}), 201)
    await asyncio.wait_for(srv.runtime.engine.wait_finished(started["id"]), 20)
    detail: dict[str, Any] = ok(await c.get(f"/api/v1/processes/instances/{started['id']}"))
    return detail


async def everything_reported(c: Client, detail: dict[str, Any]) -> dict[str, Any]:
    """What any reader of the workspace can see of an instance: detail, journal, tasks."""
    iid = detail["id"]
    events = ok(await c.get(f"/api/v1/processes/instances/{iid}/events"))
    tasks = ok(await c.get("/api/v1/execution/tasks", params={"instance_id": iid}))
    return {"detail": detail, "events": events, "tasks": tasks}


async def test_an_admin_sets_and_replaces_a_secret_and_nobody_reads_it_back(srv: Server) -> None:
    created = ok(await put_secret(srv.admin, "API_TOKEN", VALUE))
    assert set(created) == {"name", "created_at", "updated_at", "updated_by"}
    replaced = ok(await put_secret(srv.admin, "API_TOKEN", VALUE + "-2"))
    assert replaced["created_at"] == created["created_at"]
    assert replaced["updated_at"] >= created["updated_at"]
    listed = ok(await srv.admin.get(f"/api/v1/workspaces/{WS}/secrets"))
    assert [s["name"] for s in listed] == ["API_TOKEN"]
    assert listed[0]["updated_by"].startswith("user:")
    assert_clean("the list", listed)
    one = await srv.admin.get(f"/api/v1/workspaces/{WS}/secrets/API_TOKEN")
    # there is no route that reads one: 405, or 404 from the console's catch-all when the
    # built console is served (it answers unknown GETs under /api/ with "no route")
    assert one.status in (404, 405)
    assert_clean("a GET of one secret", one.body)
    gone = await srv.admin.request("DELETE", f"/api/v1/workspaces/{WS}/secrets/API_TOKEN")
    assert gone.status == 204
    assert ok(await srv.admin.get(f"/api/v1/workspaces/{WS}/secrets")) == []
    again = await srv.admin.request("DELETE", f"/api/v1/workspaces/{WS}/secrets/API_TOKEN")
    assert again.status == 404


async def test_viewers_and_editors_cannot_set_or_read_a_secret(srv: Server) -> None:
    ok(await put_secret(srv.admin, "API_TOKEN", VALUE))
    viewer = await member(srv, "vera", "viewer")
    editor = await member(srv, "eddie", "editor")
    assert (await viewer.get(f"/api/v1/workspaces/{WS}/secrets")).status == 403
    names = ok(await editor.get(f"/api/v1/workspaces/{WS}/secrets"))
    assert [s["name"] for s in names] == ["API_TOKEN"]
    assert_clean("the editor's list", names)
    for c in (viewer, editor):
        assert (await put_secret(c, "API_TOKEN", "overwritten")).status == 403
        path = f"/api/v1/workspaces/{WS}/secrets/API_TOKEN"
        assert (await c.request("DELETE", path)).status == 403


async def test_a_name_that_is_not_an_identifier_or_a_value_that_is_not_text_is_refused(
    srv: Server,
) -> None:
    r = await put_secret(srv.admin, "not-a-name", VALUE)
    assert r.status == 422
    assert_clean("the refusal", r.body)
    r = await put_secret(srv.admin, "BINARY", VALUE + "\u0000")
    assert (r.status, r.body["detail"]) == (
        422,
        "a secret value is printable text (tabs and line breaks allowed)",
    )
    assert_clean("the refusal", r.body)


async def test_another_workspace_neither_sees_nor_uses_the_secret(srv: Server, peer: Peer) -> None:
    ok(await srv.admin.post("/api/v1/workspaces", {"name": "team-b"}), 201)
    spaces = ok(await srv.admin.get("/api/v1/workspaces"))
    team_b = next(w["id"] for w in spaces if w["name"] == "team-b")
    ok(await put_secret(srv.admin, "API_TOKEN", VALUE))
    b_admin = await member(srv, "bob", "admin", team_b)
    assert (await b_admin.get(f"/api/v1/workspaces/{WS}/secrets")).status == 404
    assert (await put_secret(b_admin, "API_TOKEN", "x", WS)).status == 404
    doc = http_doc(
        "b-steals", {"url": peer.url + "/echo", "headers": {"X-Token": "{{ secrets.API_TOKEN }}"}}
    )
    detail = await run(srv, b_admin, doc)
    assert detail["status"] == "failed"
    assert "secret 'API_TOKEN' is not set in this workspace" in detail["error"]
    assert peer.received == []  # nothing was sent
    assert_clean("B's instance", await everything_reported(b_admin, detail))


async def test_the_http_node_sends_the_secret_and_reports_none_of_it(
    srv: Server, peer: Peer
) -> None:
    ok(await put_secret(srv.admin, "API_TOKEN", VALUE))
    config: JSONObject = {
        "url": peer.url + "/echo",
        "headers": {"X-Token": "{{ secrets.API_TOKEN }}"},
    }
    detail = await run(srv, srv.admin, http_doc("sends", config))
    assert detail["status"] == "completed", detail
    assert [r["X-Token"] for r in peer.received] == [VALUE]
    assert detail["outputs"]["result"]["body"]["token"] == "***"  # the echo, masked
    assert_clean("the instance", await everything_reported(srv.admin, detail))


async def test_a_secret_in_a_failing_url_stays_out_of_error_journal_and_tasks(
    srv: Server, peer: Peer
) -> None:
    """Probe finding: ``"url": "{{ secrets.x }}"`` put the value into instance.error and the
    journal, unmasked, through ``worker.fail()``."""
    ok(await put_secret(srv.admin, "API_TOKEN", VALUE))
    config: JSONObject = {"url": peer.url + "/fail/{{ secrets.API_TOKEN }}"}
    detail = await run(srv, srv.admin, http_doc("fails", config))
    assert detail["status"] == "failed"
    assert [r["path"] for r in peer.received] == ["/fail/" + VALUE]
    assert "returned status 500" in detail["error"]
    assert "/fail/***" in detail["error"]
    assert_clean("the failed instance", await everything_reported(srv.admin, detail))


async def test_a_transform_cannot_use_a_secret(srv: Server) -> None:
    """Probe finding: ``{{ secrets.x | reverse }}`` in a transform showed it to every viewer."""
    doc = {
        "schema": "cadenza/v1",
        "id": "reverse",
        "nodes": [
            {
                "id": "leak",
                "type": "transform",
                "config": {"output": "{{ secrets.API_TOKEN | reverse }}"},
            }
        ],
    }
    r = await srv.admin.post("/api/v1/processes/definitions", {"document": doc, "publish": True})
    assert r.status == 422
    assert r.body["errors"] == [
        {
            "path": "$.nodes[0].config.output",
            "message": "secrets are not available here: a secret can only be used as "
            "{{ secrets.NAME }} in an http node's url, query or headers, where it is put in "
            "as the request leaves",
        }
    ]


async def test_secrets_are_sealed_at_rest(srv: Server, tmp_path: Path) -> None:
    ok(await put_secret(srv.admin, "API_TOKEN", VALUE))
    files = sorted(tmp_path.glob("secrets.db*"))
    stored = b"".join(f.read_bytes() for f in files if f.suffix != ".key")
    assert VALUE.encode() not in stored
    assert base64.b64encode(VALUE.encode()) not in stored
    key_file = tmp_path / "secrets.db.secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_bytes() not in stored
