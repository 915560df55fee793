"""Published processes as MCP tools at ``/mcp``, over a real server and the SDK's HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from tests.api.harness import Client as ApiClient
from tests.api.harness import Server, document, serve

from cadenza.application.identity import Principal, Role
from cadenza.application.ports_api import Workspace
from cadenza.interfaces import mcp_tools
from cadenza.interfaces.api.services import ApiServices


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mcp.db'}"


@asynccontextmanager
async def mcp_session(base: str, credential: str, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP; ``mode="legacy"`` forces the 2025 handshake."""
    headers = {"Authorization": f"Bearer {credential}"}
    timeout = httpx2.Timeout(30.0, read=120.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(base + "/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


async def publish(c: ApiClient, doc: dict[str, Any]) -> None:
    saved = await c.post("/api/v1/processes/definitions", {"document": doc})
    assert saved.status == 201, saved.body
    version = saved.body["version"]
    done = await c.post(f"/api/v1/processes/definitions/{doc['id']}/versions/{version}/publish")
    assert done.status == 200, done.body


async def key_for(srv: Server, workspace: str, role: Role = Role.ADMIN) -> str:
    """An API key in ``workspace`` (created through the identity service: tests own setup)."""
    services: ApiServices = srv.app.state.services
    store = services.identity.store
    if await store.workspace(workspace) is None:
        await store.add_workspace(Workspace(workspace, workspace, 0.0))
    admin = await store.user_by_name("admin")
    assert admin is not None
    _, secret = await services.identity.create_key(
        Principal(workspace, Role.ADMIN, user_id=admin.id), f"mcp-{role.value}", role, None
    )
    return secret


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_lists_only_the_workspaces_published_processes(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        await publish(c, document("hello", description="Greets someone."))
        draft = await c.post("/api/v1/processes/definitions", {"document": document("drafty")})
        assert draft.status == 201
        beta = await key_for(srv, "beta")
        await publish(c.as_(beta), document("secret"))
        assert c.token is not None
        async with mcp_session(srv.base, c.token) as client:
            listed = await client.list_tools()
        assert [t.name for t in listed.tools] == ["hello"]
        tool = listed.tools[0]
        assert tool.input_schema == {
            "type": "object",
            "properties": {"name": {"type": "string"}},
        }
        assert tool.description is not None
        assert "Greets someone." in tool.description
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is False
        assert tool.annotations.idempotent_hint is False
        async with mcp_session(srv.base, beta) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["secret"]


async def test_a_newer_draft_leaves_the_published_version_listed(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        await publish(c, document("hello"))
        newer = await c.post(
            "/api/v1/processes/definitions", {"document": document("hello", name="Renamed")}
        )
        assert newer.status == 201, newer.body
        assert c.token is not None
        async with mcp_session(srv.base, c.token) as client:
            (tool,) = (await client.list_tools()).tools
        assert tool.title == "Hello"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_call_runs_the_process_and_returns_its_outputs(sqlite_url: str, mode: str) -> None:
    async with serve(sqlite_url) as srv:
        await publish(srv.admin, document("hello"))
        key = await key_for(srv, "default", Role.OPERATOR)
        async with mcp_session(srv.base, key, mode) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["hello"]
            result = await client.call_tool("hello", {"name": "Ada"})
        assert not result.is_error, _text(result)
        assert result.structured_content == {"greeting": "hello Ada"}
        assert '"greeting": "hello Ada"' in _text(result)
        listed = await srv.admin.get("/api/v1/processes/instances")
        assert listed.status == 200, listed.body
        (row,) = listed.body["items"]
        assert row["status"] == "completed"
        assert row["inputs"] == {"name": "Ada"}


async def test_an_idempotency_key_in_meta_starts_one_instance(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await publish(srv.admin, document("hello"))
        assert srv.admin.token is not None
        meta: Any = {mcp_tools.IDEMPOTENCY_META_KEY: "order-17"}
        async with mcp_session(srv.base, srv.admin.token) as client:
            first = await client.call_tool("hello", {"name": "Ada"}, meta=meta)
            again = await client.call_tool("hello", {"name": "Ada"}, meta=meta)
        assert first.structured_content == again.structured_content == {"greeting": "hello Ada"}
        listed = await srv.admin.get("/api/v1/processes/instances")
        assert len(listed.body["items"]) == 1


async def test_bad_inputs_are_an_error_result_naming_the_problem(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await publish(srv.admin, document("hello"))
        assert srv.admin.token is not None
        async with mcp_session(srv.base, srv.admin.token) as client:
            result = await client.call_tool("hello", {"name": 42})
        assert result.is_error
        assert "name" in _text(result)
        assert "string" in _text(result)
        assert isinstance(result.structured_content, dict)
        assert result.structured_content["problems"][0]["path"] == "inputs.name"


async def test_a_failed_instance_is_an_error_result(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        failing = document(
            "broken",
            nodes=[{"id": "boom", "type": "transform", "config": {"output": "{{ 1 // 0 }}"}}],
            outputs={"x": "{{ nodes.boom.output }}"},
        )
        await publish(srv.admin, failing)
        assert srv.admin.token is not None
        async with mcp_session(srv.base, srv.admin.token) as client:
            result = await client.call_tool("broken", {})
        assert result.is_error
        assert isinstance(result.structured_content, dict)
        assert result.structured_content["status"] == "failed"
        assert "failed" in _text(result)


async def test_a_long_run_answers_with_the_instance_to_follow(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_tools, "CALL_WAIT_S", 0.3)
    async with serve(sqlite_url) as srv:
        slow = document(
            "slow",
            nodes=[{"id": "nap", "type": "wait", "config": {"duration": "30s"}}],
            outputs={},
        )
        await publish(srv.admin, slow)
        assert srv.admin.token is not None
        async with mcp_session(srv.base, srv.admin.token) as client:
            result = await client.call_tool("slow", {})
        assert not result.is_error, _text(result)
        assert isinstance(result.structured_content, dict)
        assert result.structured_content["status"] == "running"
        iid = result.structured_content["instance_id"]
        assert result.structured_content["follow"] == f"/api/v1/processes/instances/{iid}"
        detail = await srv.admin.get(f"/api/v1/processes/instances/{iid}")
        assert detail.status == 200, detail.body


async def test_unknown_and_foreign_tools_are_refused(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        beta = await key_for(srv, "beta")
        await publish(srv.admin.as_(beta), document("secret"))
        assert srv.admin.token is not None
        async with mcp_session(srv.base, srv.admin.token) as client:
            with pytest.raises(MCPError, match="unknown tool 'secret'"):
                await client.call_tool("secret", {})
        listed = await srv.admin.get("/api/v1/processes/instances")
        assert listed.body["items"] == []


async def test_a_viewer_can_list_but_not_run(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await publish(srv.admin, document("hello"))
        viewer = await key_for(srv, "default", Role.VIEWER)
        async with mcp_session(srv.base, viewer) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["hello"]
            result = await client.call_tool("hello", {"name": "Ada"})
        assert result.is_error
        assert "lacks the 'run' permission" in _text(result)
        assert (await srv.admin.get("/api/v1/processes/instances")).body["items"] == []


_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "0"},
    },
}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing credentials"),
        ({"Authorization": "Bearer not-a-token"}, "token rejected"),
        ({"Authorization": "Bearer cdz_not-a-key"}, "rejected"),
    ],
)
async def test_requests_without_valid_credentials_get_401(
    sqlite_url: str, headers: dict[str, str], why: str
) -> None:
    async with serve(sqlite_url) as srv:
        anon = srv.anonymous
        for method in ("POST", "GET", "DELETE"):
            r = await anon.request(
                method,
                "/mcp",
                _INITIALIZE if method == "POST" else None,
                headers={**headers, "Accept": "application/json, text/event-stream"},
            )
            assert r.status == 401, (method, r.body)
            assert r.headers["Content-Type"] == "application/problem+json"
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert why in r.body["detail"]


async def test_an_expired_api_key_gets_401(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        services: ApiServices = srv.app.state.services
        admin = await services.identity.store.user_by_name("admin")
        assert admin is not None
        _, secret = await services.identity.create_key(
            Principal("default", Role.ADMIN, user_id=admin.id), "short", Role.VIEWER, 0.05
        )
        await asyncio.sleep(0.1)
        r = await srv.anonymous.post(
            "/mcp", _INITIALIZE, headers={"Authorization": f"Bearer {secret}"}
        )
        assert r.status == 401, r.body
        assert "expired" in r.body["detail"]


async def test_a_workspace_the_caller_is_not_in_is_refused(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        beta = await key_for(srv, "beta")
        r = await srv.anonymous.post(
            "/mcp",
            _INITIALIZE,
            headers={"Authorization": f"Bearer {beta}", "X-Workspace": "default"},
        )
        assert r.status == 403, r.body
        assert r.headers["Content-Type"] == "application/problem+json"


async def test_the_sdk_client_sees_the_refusal(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        with pytest.raises(ExceptionGroup) as caught:
            async with mcp_session(srv.base, "wrong") as client:
                await client.list_tools()
        assert caught.group_contains(MCPError)
