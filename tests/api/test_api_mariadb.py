"""The API on MariaDB: every table it writes (definitions, instances, tasks, the feed, users,
API keys, sessions, agents, workspace secrets) through real HTTP calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.api.fixtures import ok
from tests.api.harness import document, serve

from cadenza.infrastructure.secrets_crypto import new_key

pytestmark = pytest.mark.mariadb


async def test_a_definition_runs_to_completion_over_http(mariadb_database_url: str) -> None:
    async with serve(mariadb_database_url, secrets_key=new_key()) as srv:
        c = srv.admin
        saved = ok(await c.post("/api/v1/processes/definitions", {"document": document()}), 201)
        assert saved["status"] == "draft"
        path = f"/api/v1/processes/definitions/hello/versions/{saved['version']}/publish"
        assert ok(await c.post(path))["status"] == "published"
        body = {"process_id": "hello", "inputs": {"name": "Ada"}}
        started = ok(await c.post("/api/v1/processes/instances", body), 201)
        await asyncio.wait_for(srv.runtime.engine.wait_finished(started["id"]), 20)
        detail: dict[str, Any] = ok(await c.get(f"/api/v1/processes/instances/{started['id']}"))
        assert (detail["status"], detail["outputs"]) == ("completed", {"greeting": "hello Ada"})
        assert [t["node_id"] for t in detail["tasks"]] == ["start", "greet", "end"]
        listed = ok(await c.get("/api/v1/processes/instances"))
        assert [i["id"] for i in listed["items"]] == [started["id"]]
        events = ok(await c.get(f"/api/v1/processes/instances/{started['id']}/events"))
        assert events[0]["type"] == "InstanceStarted"
        assert events[-1]["type"] == "InstanceCompleted"


async def test_keys_agents_and_secrets_are_stored(mariadb_database_url: str) -> None:
    async with serve(mariadb_database_url, secrets_key=new_key()) as srv:
        c = srv.admin
        key = ok(await c.post("/api/v1/api-keys", {"name": "ops", "role": "operator"}), 201)
        assert ok(await c.as_(key["secret"]).get("/api/v1/processes/instances"))["items"] == []
        worker = {"name": "py-worker", "type": "worker", "capabilities": ["x"], "capacity": 2}
        made = ok(await c.post("/api/v1/agents/register", worker), 201)
        assert (await c.post("/api/v1/agents/register", worker)).status == 409
        assert [a["id"] for a in ok(await c.get("/api/v1/agents"))] == [made["id"]]
        put = await c.request("PUT", "/api/v1/workspaces/default/secrets/TOKEN", {"value": "v1"})
        assert ok(put)["name"] == "TOKEN"
        names = [s["name"] for s in ok(await c.get("/api/v1/workspaces/default/secrets"))]
        assert names == ["TOKEN"]
