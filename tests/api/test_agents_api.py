"""Agents, providers and MCP servers over the API: CRUD, health, roles, problems."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.api.harness import Client, Reply, serve

from cadenza.settings import McpServerSettings, ProviderSettings

MCP_SCRIPT = Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py"
WORKER = {"name": "py-worker", "type": "worker", "capabilities": ["summarize"], "capacity": 2}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def as_role(admin: Client, role: str) -> Client:
    r = await admin.post("/api/v1/api-keys", {"name": f"{role}-key", "role": role})
    assert r.status == 201, r.body
    return admin.as_(r.body["secret"])


def is_problem(r: Reply, status: int) -> bool:
    return (
        r.status == status
        and {k.lower(): v for k, v in r.headers.items()}["content-type"]
        == "application/problem+json"
        and r.body["status"] == status
        and bool(r.body["detail"])
    )


async def test_register_list_update_drain_resume_and_remove_an_agent(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        made = await c.post("/api/v1/agents/register", WORKER)
        assert made.status == 201, made.body
        agent: dict[str, Any] = made.body
        assert agent["status"] == "unknown"
        assert agent["capabilities"] == ["summarize"]
        assert agent["outstanding"] == 0
        path = f"/api/v1/agents/{agent['id']}"
        listed = await c.get("/api/v1/agents")
        assert [a["name"] for a in listed.body] == ["py-worker"]
        assert (await c.get(path)).body["capacity"] == 2

        changed = await c.request("PATCH", path, {"capabilities": ["summarize", "x"], "weight": 3})
        assert changed.status == 200, changed.body
        assert changed.body["capabilities"] == ["summarize", "x"]
        assert changed.body["weight"] == 3
        assert changed.body["capacity"] == 2  # untouched

        beat = await c.post(f"{path}/heartbeat")
        assert beat.body["status"] == "healthy"
        assert beat.body["last_seen"] is not None
        assert is_problem(await c.post(f"{path}/resume"), 409)  # it is not draining
        assert (await c.post(f"{path}/drain")).body["status"] == "draining"
        assert (await c.post(f"{path}/resume")).body["status"] == "unknown"

        removed = await c.request("DELETE", path)
        assert removed.status == 204
        assert is_problem(await c.get(path), 404)
        assert is_problem(await c.request("DELETE", path), 404)


async def test_health_lists_each_agent_and_counts_by_status(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        a = (await c.post("/api/v1/agents/register", WORKER)).body
        await c.post("/api/v1/agents/register", {**WORKER, "name": "idle"})
        await c.post(f"/api/v1/agents/{a['id']}/heartbeat")
        health = await c.get("/api/v1/agents/health")
        assert health.status == 200
        summary = health.body["summary"]
        assert set(summary) == {"total", "healthy", "unknown", "unhealthy", "draining"}
        assert summary["total"] == 2
        assert summary["healthy"] == 1
        assert summary["unknown"] + summary["unhealthy"] == 1  # a worker never heard from
        by_name = {x["name"]: x for x in health.body["agents"]}
        assert by_name["py-worker"]["healthy"] is True
        assert by_name["py-worker"]["status"] == "healthy"
        assert by_name["idle"]["healthy"] is False
        assert by_name["idle"]["last_seen"] is None


async def test_invalid_and_conflicting_registrations_are_problems(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        assert (await c.post("/api/v1/agents/register", WORKER)).status == 201
        taken = await c.post("/api/v1/agents/register", WORKER)
        assert is_problem(taken, 409)
        bad_name = await c.post("/api/v1/agents/register", {**WORKER, "name": "Has Spaces"})
        assert is_problem(bad_name, 422)
        assert "slug" in bad_name.body["detail"]
        no_model = await c.post(
            "/api/v1/agents/register",
            {"name": "gpt", "type": "llm", "config": {"provider": "offline"}},
        )
        assert is_problem(no_model, 422)
        assert "missing [model]" in no_model.body["detail"]
        bad_type = await c.post("/api/v1/agents/register", {**WORKER, "type": "robot"})
        assert is_problem(bad_type, 422)
        assert bad_type.body["errors"][0]["path"] == "body.type"
        zero = await c.post("/api/v1/agents/register", {**WORKER, "capacity": 0})
        assert is_problem(zero, 422)
        unknown = await c.request("PATCH", "/api/v1/agents/nope", {"weight": 2})
        assert is_problem(unknown, 404)


async def test_heartbeat_is_for_worker_agents_only(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        # An HTTP agent on a loopback URL: the egress guard fails its health check.
        made = await c.post(
            "/api/v1/agents/register",
            {"name": "hook", "type": "http", "config": {"url": "http://127.0.0.1:9/run"}},
        )
        path = f"/api/v1/agents/{made.body['id']}"
        for _ in range(100):
            if (await c.get(path)).body["status"] == "unhealthy":
                break
            await asyncio.sleep(0.05)
        beat = await c.post(f"{path}/heartbeat")
        assert is_problem(beat, 422)
        assert "not a worker" in beat.body["detail"]
        assert (await c.get(path)).body["status"] == "unhealthy"  # the refused beat did nothing


async def test_roles_viewer_reads_operator_beats_editor_manages_agents(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        viewer = await as_role(srv.admin, "viewer")
        operator = await as_role(srv.admin, "operator")
        editor = await as_role(srv.admin, "editor")
        assert is_problem(await viewer.post("/api/v1/agents/register", WORKER), 403)
        assert is_problem(await operator.post("/api/v1/agents/register", WORKER), 403)
        made = await editor.post("/api/v1/agents/register", WORKER)
        assert made.status == 201
        path = f"/api/v1/agents/{made.body['id']}"
        assert (await viewer.get("/api/v1/agents")).status == 200
        assert (await viewer.get("/api/v1/agents/health")).status == 200
        assert (await viewer.get(path)).status == 200
        assert is_problem(await viewer.post(f"{path}/heartbeat"), 403)
        assert (await operator.post(f"{path}/heartbeat")).status == 200
        assert is_problem(await operator.post(f"{path}/drain"), 403)
        assert is_problem(await operator.request("PATCH", path, {"weight": 2}), 403)
        assert is_problem(await operator.request("DELETE", path), 403)
        assert (await editor.post(f"{path}/drain")).status == 200
        assert (await editor.request("DELETE", path)).status == 204
        assert is_problem(await srv.anonymous.get("/api/v1/agents"), 401)


async def test_providers_are_listed_without_secrets_and_tested(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADENZA_TEST_UNREACHABLE_KEY", "sk-very-secret")
    unreachable = ProviderSettings(
        name="nowhere",
        kind="openai",
        base_url="http://127.0.0.1:9/v1",  # the discard port: the connection is refused
        api_key_env="CADENZA_TEST_UNREACHABLE_KEY",
        default_model="m1",
    )
    async with serve(sqlite_url, providers=[unreachable]) as srv:
        viewer = await as_role(srv.admin, "viewer")
        listed = await viewer.get("/api/v1/providers")
        assert listed.status == 200
        assert "sk-very-secret" not in str(listed.body)
        assert "CADENZA_TEST_UNREACHABLE_KEY" not in str(listed.body)
        by_name = {p["name"]: p for p in listed.body}
        assert by_name["offline"] == {
            "name": "offline",
            "kind": "offline",
            "base_url": None,
            "default": True,
            "models": [],
            "breaker": None,
        }
        assert by_name["nowhere"]["kind"] == "openai"
        assert by_name["nowhere"]["base_url"] == "http://127.0.0.1:9/v1"
        assert by_name["nowhere"]["models"] == ["m1"]
        assert by_name["nowhere"]["breaker"] == "closed"

        assert is_problem(await viewer.post("/api/v1/providers/offline/test"), 403)
        editor = await as_role(srv.admin, "editor")
        ok = await editor.post("/api/v1/providers/offline/test")
        assert ok.status == 200
        assert ok.body["ok"] is True
        assert ok.body["models"] == ["offline"]
        assert ok.body["latency_ms"] >= 0
        failed = await editor.post("/api/v1/providers/nowhere/test")
        assert failed.status == 200
        assert failed.body["ok"] is False
        assert "nowhere" in failed.body["detail"]
        assert is_problem(await editor.post("/api/v1/providers/missing/test"), 404)


async def test_mcp_servers_list_tools_and_reapprove_a_changed_definition(
    sqlite_url: str, tmp_path: Path
) -> None:
    flip = tmp_path / "flip"
    server = McpServerSettings(
        name="test",
        command=sys.executable,
        args=[str(MCP_SCRIPT), "--transport", "stdio"],
        env={"MCP_TEST_FLIP": str(flip), "MCP_TEST_LOG": str(tmp_path / "log")},
    )
    async with serve(sqlite_url, mcp_servers=[server]) as srv:
        viewer = await as_role(srv.admin, "viewer")
        servers = await viewer.get("/api/v1/mcp-servers")
        assert servers.body == [
            {"name": "test", "transport": "stdio", "status": "idle", "scope": "environment"}
        ]
        tools = await viewer.get("/api/v1/mcp-servers/test/tools")
        assert tools.status == 200, tools.body
        by_name = {t["name"]: t for t in tools.body}
        echo = by_name["echo"]
        assert echo["annotations"] == {"readOnlyHint": True}
        assert echo["pinned_hash"] == echo["definition_hash"]
        assert not echo["changed"]
        connected = await viewer.get("/api/v1/mcp-servers")
        assert connected.body[0]["status"] == "connected"

        # The server changes a tool's definition and announces it.
        await srv.runtime.gateway.call_tool("test", "flip", {}, idempotency_key="flip-1")
        flaky: dict[str, Any] = {}
        for _ in range(100):
            listed = await viewer.get("/api/v1/mcp-servers/test/tools")
            flaky = {t["name"]: t for t in listed.body}["flaky_definition"]
            if flaky["changed"]:
                break
            await asyncio.sleep(0.05)
        assert flaky["changed"]
        assert flaky["needs_approval"]
        assert flaky["description"] == "Returns 'v2'."

        approve = "/api/v1/mcp-servers/test/tools/flaky_definition/approve"
        assert is_problem(await viewer.post(approve), 403)
        admin_key = await as_role(srv.admin, "admin")  # admin of a workspace, not the system
        assert is_problem(await admin_key.post(approve), 403)
        approved = await srv.admin.post(approve)
        assert approved.status == 200, approved.body
        assert not approved.body["changed"]
        assert approved.body["pinned_hash"] == flaky["definition_hash"]

        assert is_problem(await srv.admin.post("/api/v1/mcp-servers/test/tools/no/approve"), 404)
        assert is_problem(await viewer.get("/api/v1/mcp-servers/other/tools"), 404)


async def test_no_mcp_servers_configured(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        assert (await srv.admin.get("/api/v1/mcp-servers")).body == []
        assert is_problem(await srv.admin.get("/api/v1/mcp-servers/x/tools"), 404)


async def test_another_workspace_may_use_an_agent_name_without_learning_it_exists(
    sqlite_url: str,
) -> None:
    """Security regression (issue 9, Low): agent names were unique server-wide, so a 409
    told workspace B that workspace A had an agent of that name."""
    async with serve(sqlite_url) as srv:
        made = await srv.admin.post("/api/v1/workspaces", {"name": "team-b"})
        assert made.status == 201, made.body
        a = await as_role(srv.admin, "editor")  # acts in "default"
        b_admin = srv.admin.as_(srv.admin.token, made.body["id"])
        b = await as_role(b_admin, "editor")
        assert (await a.post("/api/v1/agents/register", WORKER)).status == 201
        mine = await b.post("/api/v1/agents/register", WORKER)
        assert mine.status == 201, mine.body
        taken = await b.post("/api/v1/agents/register", WORKER)
        assert is_problem(taken, 409)
        assert taken.body["detail"] == (
            "an agent of this workspace or a shared agent is already named 'py-worker'"
        )
        assert [x["id"] for x in (await b.get("/api/v1/agents")).body] == [mine.body["id"]]
