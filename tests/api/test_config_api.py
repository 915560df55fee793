"""Runtime configuration over the real API: providers and MCP servers saved after a
validation call, their credentials sealed and never returned, workspace isolation of stored
providers, environment items read-only, live settings, and the URL policy."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from tests.api.fixtures import ok, settled
from tests.api.harness import Client, Server, document, serve
from tests.fakes.openai_server import FakeOpenAIServer

from cadenza.infrastructure.sql.database import create_engine, normalize_url
from cadenza.infrastructure.sql.tables import audit, runtime_config

KEY = "sk-live-K3y/+=config-77"
MCP_TOKEN = "mcp-T0ken-secret-55"
MCP_SERVER = str(Path(__file__).parents[1] / "fakes" / "mcp_test_server.py")
PROVIDERS = "/api/v1/config/providers"
SERVERS = "/api/v1/config/mcp-servers"
SETTINGS = "/api/v1/config/settings"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(models=("fake-small", "fake-large")) as server:
        yield server


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(
        f"sqlite:///{tmp_path / 'config.db'}",
        config_allowed_hosts=["127.0.0.1"],
        providers=[{"name": "envp", "kind": "offline"}],
    ) as s:
        yield s


def assert_no_key(what: str, payload: Any) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    for secret in (KEY, MCP_TOKEN):
        assert secret not in text, f"{what} holds a credential: {text[:400]}"


async def db_text(srv: Server) -> str:
    """Every runtime_config and audit row, as text (sealed bytes decoded leniently)."""
    engine = create_engine(normalize_url(srv.runtime.settings.database_url))
    try:
        async with engine.connect() as conn:
            rows = [*(await conn.execute(sa.select(runtime_config))).all()]
            rows += [*(await conn.execute(sa.select(audit))).all()]
    finally:
        await engine.dispose()
    return "\n".join(
        repr(tuple(v.decode("latin-1") if isinstance(v, bytes) else v for v in r)) for r in rows
    )


def provider(fake: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": fake.base_url, "default_model": "fake-small", **extra}


async def test_provider_is_validated_saved_sealed_and_never_returned(
    srv: Server, fake: FakeOpenAIServer
) -> None:
    admin = srv.admin
    saved = ok(await admin.request("PUT", f"{PROVIDERS}/team", provider(fake, api_key=KEY)))
    assert (saved["source"], saved["scope"], saved["has_api_key"]) == (
        "database",
        "workspace",
        True,
    )
    assert any(r.path.endswith("/models") for r in fake.requests)  # the test call was made
    listed = ok(await admin.get(PROVIDERS))
    names = {(p["name"], p["source"]) for p in listed}
    assert {("envp", "environment"), ("offline", "environment"), ("team", "database")} <= names
    # a change without the key keeps it
    again = ok(await admin.request("PUT", f"{PROVIDERS}/team", provider(fake, default_model="x")))
    assert (again["has_api_key"], again["default_model"], again["revision"]) == (True, "x", 2)
    for reply in (saved, listed, again, ok(await admin.get(f"{PROVIDERS}/team"))):
        assert_no_key("a response", reply)
    audit_rows = ok(await admin.get("/api/v1/audit?action=config.provider.put"))
    assert_no_key("the audit log", audit_rows)
    text = await db_text(srv)
    assert "team" in text
    assert_no_key("the database", text)
    db = Path(srv.runtime.settings.database_url.removeprefix("sqlite:///"))
    for path in (db, db.with_name(db.name + "-wal")):  # the file itself, committed or not
        if path.exists():
            assert KEY.encode() not in path.read_bytes(), path


async def test_failed_validation_is_422_with_the_reason_and_saves_nothing(srv: Server) -> None:
    admin = srv.admin
    dead = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": KEY}
    r = await admin.request("PUT", f"{PROVIDERS}/dead", dead)
    assert r.status == 422, r.body
    assert "failed its test call" in r.body["detail"]
    assert (await admin.get(f"{PROVIDERS}/dead")).status == 404
    # skipping validation is for system admins; the first admin is one
    skipped = await admin.request("PUT", f"{PROVIDERS}/dead?validate=false", dead)
    assert ok(skipped)["name"] == "dead"


async def test_private_urls_are_refused_unless_allowed(srv: Server) -> None:
    for url in (
        "http://10.1.2.3/v1",
        "http://169.254.169.254/v1",
        "http://[::1]:9/v1",
        "file:///etc/passwd",
    ):
        body = {"kind": "openai", "base_url": url}
        r = await srv.admin.request("PUT", f"{PROVIDERS}/private?validate=false", body)
        assert r.status == 422, (url, r.body)
        assert "URL refused" in r.body["detail"]


async def test_environment_names_are_read_only(srv: Server, fake: FakeOpenAIServer) -> None:
    for method, body in (("PUT", provider(fake)), ("DELETE", None)):
        r = await srv.admin.request(method, f"{PROVIDERS}/envp", body)
        assert r.status == 409, r.body
        assert "environment" in r.body["detail"]


async def _workspace_admin(srv: Server, name: str) -> Client:
    system = srv.admin
    ws = ok(await system.post("/api/v1/workspaces", {"name": name}), 201)["id"]
    body = {"username": f"{name}-admin", "password": "a-long-password-123"}
    user = ok(await system.post("/api/v1/users", body), 201)["id"]
    ok(await system.request("PUT", f"/api/v1/workspaces/{ws}/members/{user}", {"role": "admin"}))
    me = await srv.anonymous.login(body["username"], body["password"])
    return me.as_(me.token, ws)


async def test_workspace_providers_are_invisible_and_unusable_elsewhere(
    srv: Server, fake: FakeOpenAIServer
) -> None:
    a = await _workspace_admin(srv, "cfg-a")
    b = await _workspace_admin(srv, "cfg-b")
    ok(await a.request("PUT", f"{PROVIDERS}/mine", provider(fake, api_key=KEY)))
    assert "mine" not in {p["name"] for p in ok(await b.get(PROVIDERS))}
    assert (await b.get(f"{PROVIDERS}/mine")).status == 404
    assert (await b.request("DELETE", f"{PROVIDERS}/mine")).status == 404
    # shared scope and skipping validation are for system admins
    assert (await a.request("PUT", f"{PROVIDERS}/x?scope=shared", provider(fake))).status == 403
    assert (await a.request("PUT", f"{PROVIDERS}/x?validate=false", provider(fake))).status == 403
    llm = {"id": "ask", "type": "llm", "config": {"provider": "mine", "prompt": "hi"}}
    for client, expected in ((a, "completed"), (b, "failed")):
        pid = f"uses-mine-{expected}"
        doc = document(pid, nodes=[llm], outputs={"text": "{{ nodes.ask.output.text }}"})
        body = {"document": doc, "publish": True}
        ok(await client.post("/api/v1/processes/definitions", body), 201)
        started = ok(await client.post("/api/v1/processes/instances", {"process_id": pid}), 201)
        done = await settled(client, started["id"], expected)
        if expected == "failed":
            assert "no model provider named 'mine'" in json.dumps(done)
    # the call was counted, but /metrics (read across workspaces) does not name the provider
    metrics = generate_latest(srv.runtime.metrics.registry).decode()
    assert (
        'cadenza_llm_tokens_total{kind="prompt",model="workspace",provider="workspace"}' in metrics
    )
    assert "mine" not in metrics


async def test_mcp_server_is_validated_and_its_values_never_returned(srv: Server) -> None:
    body = {
        "command": sys.executable,
        "args": [MCP_SERVER],
        "env": {"TOKEN": MCP_TOKEN},
    }
    saved = ok(await srv.admin.request("PUT", f"{SERVERS}/tools?scope=shared", body))
    assert (saved["transport"], saved["env_names"], saved["scope"]) == (
        "stdio",
        ["TOKEN"],
        "shared",
    )
    assert_no_key("a response", saved)
    assert_no_key("a list", ok(await srv.admin.get(SERVERS)))
    assert_no_key("the database", await db_text(srv))
    broken = {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]}
    r = await srv.admin.request("PUT", f"{SERVERS}/broken?scope=shared", broken)
    assert r.status == 422, r.body
    assert "handshake" in r.body["detail"]
    ref = {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "env:CADENZA_SECRETS_KEY"}}
    r = await srv.admin.request("PUT", f"{SERVERS}/leak?validate=false", ref)
    assert r.status == 422, r.body
    assert "env:" in r.body["detail"]


async def test_workspace_admins_may_not_start_commands(srv: Server) -> None:
    a = await _workspace_admin(srv, "cfg-cmd")
    r = await a.request("PUT", f"{SERVERS}/sh", {"command": "/bin/sh", "args": ["-c", "id"]})
    assert r.status == 403, r.body


async def test_live_settings(srv: Server, fake: FakeOpenAIServer) -> None:
    admin = srv.admin
    listed = {s["name"]: s for s in ok(await admin.get(SETTINGS))}
    assert listed["default_provider"] == {
        "name": "default_provider",
        "value": "offline",
        "source": "default",
        "updated_at": None,
        "updated_by": None,
    }
    bad = await admin.request("PUT", f"{SETTINGS}/mcp_breaker_failures", {"value": 0})
    assert bad.status == 422, bad.body
    assert (await admin.request("PUT", f"{SETTINGS}/lease_s", {"value": 3})).status == 404
    nowhere = await admin.request("PUT", f"{SETTINGS}/default_provider", {"value": "nope"})
    assert nowhere.status == 422, nowhere.body
    ok(await admin.request("PUT", f"{PROVIDERS}/house?scope=shared", provider(fake)))
    changed = ok(await admin.request("PUT", f"{SETTINGS}/default_provider", {"value": "house"}))
    assert (changed["value"], changed["source"]) == ("house", "database")
    assert srv.runtime.applier is not None
    await srv.runtime.applier.reload()
    assert srv.runtime.providers.default == "house"
    busy = await admin.request("DELETE", f"{PROVIDERS}/house?scope=shared")
    assert busy.status == 409, busy.body
    assert "default_provider" in busy.body["detail"]
    tested = ok(await admin.post("/api/v1/providers/house/test"))
    assert tested["ok"] is True
    assert tested["models"] == ["fake-small", "fake-large"]
    r = await admin.request("DELETE", f"{SETTINGS}/default_provider")
    assert r.status == 204
    await srv.runtime.applier.reload()
    assert srv.runtime.providers.default == "offline"
    viewer_like = await _workspace_admin(srv, "cfg-set")
    assert (await viewer_like.get(SETTINGS)).status == 403


async def test_a_workspace_mcp_server_serves_only_its_workspace(srv: Server) -> None:
    body = {"command": sys.executable, "args": [MCP_SERVER]}
    # the system admin stores it in its current workspace ("default")
    ok(await srv.admin.request("PUT", f"{SERVERS}/wstools", body))
    other = await _workspace_admin(srv, "cfg-tools")
    assert srv.runtime.applier is not None
    await srv.runtime.applier.reload()
    # the MCP page lists it to its workspace, under the name its nodes use; never elsewhere
    mine = {s["name"]: s for s in ok(await srv.admin.get("/api/v1/mcp-servers"))}
    assert (mine["wstools"]["scope"], mine["wstools"]["transport"]) == ("workspace", "stdio")
    assert "wstools" not in {s["name"] for s in ok(await other.get("/api/v1/mcp-servers"))}
    tools = ok(await srv.admin.get("/api/v1/mcp-servers/wstools/tools"))
    assert "echo" in {t["name"] for t in tools}
    assert (await other.get("/api/v1/mcp-servers/wstools/tools")).status == 404
    assert (await other.get("/api/v1/mcp-servers/wstools%23default/tools")).status == 404
    for n, (client, server, expected) in enumerate(
        (
            (srv.admin, "wstools", "completed"),
            (other, "wstools", "failed"),
            (other, "wstools#default", "failed"),
        )
    ):
        tool = {"server": server, "tool": "echo", "arguments": {"text": "hi"}}
        node = {"id": "call", "type": "tool", "config": tool}
        pid = f"uses-tools-{n}"
        doc = document(pid, nodes=[node], outputs={"out": "{{ nodes.call.output }}"})
        ok(
            await client.post("/api/v1/processes/definitions", {"document": doc, "publish": True}),
            201,
        )
        started = ok(await client.post("/api/v1/processes/instances", {"process_id": pid}), 201)
        done = await settled(client, started["id"], expected)
        if expected == "failed":
            assert "unknown MCP server" in json.dumps(done), done


async def test_behind_an_mcp_proxy_mcp_servers_are_validated_and_stored(tmp_path: Path) -> None:
    """The proxy applies them (tests/e2e/test_config_processes.py); the API still checks the
    handshake before saving."""
    proxy = {"mcp_proxy_url": "http://127.0.0.1:9/mcp", "mcp_proxy_token": "p" * 32}
    async with serve(f"sqlite:///{tmp_path / 'proxied.db'}", **proxy) as s:
        body = {"command": sys.executable, "args": [MCP_SERVER]}
        saved = ok(await s.admin.request("PUT", f"{SERVERS}/proxied?scope=shared", body))
        assert (saved["name"], saved["source"], saved["scope"]) == ("proxied", "database", "shared")
        broken = {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]}
        r = await s.admin.request("PUT", f"{SERVERS}/broken?scope=shared", broken)
        assert r.status == 422, r.body


async def test_a_setting_the_environment_sets_is_read_only(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'fixed.db'}", mcp_breaker_failures=4) as s:
        listed = {r["name"]: r for r in ok(await s.admin.get(SETTINGS))}
        assert (
            listed["mcp_breaker_failures"]["value"],
            listed["mcp_breaker_failures"]["source"],
        ) == (
            4,
            "environment",
        )
        r = await s.admin.request("PUT", f"{SETTINGS}/mcp_breaker_failures", {"value": 9})
        assert r.status == 409, r.body
        assert "environment or cadenza.toml" in r.body["detail"]
