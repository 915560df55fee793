"""Gateway checks at the edge: Host, Origin, body size, content type, validation errors,
problem+json bodies, request ids, first-admin bootstrap and login."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.api.harness import document, serve

from cadenza.application.accounts import IdentityInvalid
from cadenza.bootstrap import build, build_app, build_identity
from cadenza.settings import Settings


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def test_unknown_host_and_foreign_origin_are_refused(url: str) -> None:
    async with serve(url) as srv:
        bad_host = await srv.admin.get("/api/v1/me", headers={"Host": "evil.example"})
        assert bad_host.status == 400
        assert "host 'evil.example' is not allowed" in bad_host.body["detail"]
        # probes and scrapes come by pod IP: those GETs answer under any Host
        for path in ("/health", "/health/readiness"):
            probe = await srv.admin.get(path, headers={"Host": "10.1.2.3:8080"})
            assert probe.status == 200, path
        scrape = await srv.admin.get("/metrics", headers={"Host": "10.1.2.3:8080"})
        assert scrape.status != 400  # passes the Host check; the metrics token decides
        for method, path in (("POST", "/health"), ("GET", "/health/x"), ("GET", "/")):
            other = await srv.admin.request(method, path, headers={"Host": "10.1.2.3"})
            assert other.status == 400, (method, path)
        foreign = await srv.admin.post(
            "/api/v1/processes/definitions/validate",
            {"document": document()},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status == 403
        assert foreign.headers["Content-Type"] == "application/problem+json"
        same = await srv.admin.get("/api/v1/me", headers={"Origin": srv.base})
        assert same.status == 200
        assert "Access-Control-Allow-Origin" not in same.headers  # CORS closed by default


async def test_cors_is_opt_in(url: str) -> None:
    async with serve(url, cors_origins=["https://console.example"]) as srv:
        r = await srv.admin.request(
            "OPTIONS",
            "/api/v1/me",
            headers={
                "Origin": "https://console.example",
                "Access-Control-Request-Method": "GET",
            },
        )
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://console.example"


async def test_body_limits_and_content_types(url: str) -> None:
    async with serve(url, max_body_bytes=2048) as srv:
        c = srv.admin
        big = {"document": document(description="x" * 4096)}
        too_large = await c.post("/api/v1/processes/definitions", big)
        assert too_large.status == 413
        assert "2048" in too_large.body["detail"]
        yaml_body = await c.request(
            "POST",
            "/api/v1/processes/definitions",
            data=b"id: x",
            headers={"Content-Type": "application/yaml"},
        )
        assert yaml_body.status == 415
        assert "application/json" in yaml_body.body["detail"]
        assert yaml_body.headers["X-Request-ID"]


async def test_validation_errors_name_the_field(url: str) -> None:
    async with serve(url) as srv:
        c = srv.admin
        missing = await c.post("/api/v1/processes/instances", {"inputs": {}})
        assert missing.status == 422
        assert {"path": "body.process_id", "message": "Field required"} in missing.body["errors"]
        bad_doc = document(nodes=[{"id": "a", "type": "nope"}])
        invalid = await c.post("/api/v1/processes/definitions", {"document": bad_doc})
        assert invalid.status == 422
        assert invalid.body["title"] == "Invalid definition"
        assert any(e["path"].startswith("$.nodes[0]") for e in invalid.body["errors"])
        check = await c.post("/api/v1/processes/definitions/validate", {"document": bad_doc})
        assert check.status == 200
        assert check.body["valid"] is False
        await c.post("/api/v1/processes/definitions", {"document": document(), "publish": True})
        wrong_inputs = await c.post(
            "/api/v1/processes/instances", {"process_id": "hello", "inputs": {"name": 5}}
        )
        assert wrong_inputs.status == 422
        assert wrong_inputs.body["errors"][0]["path"].startswith("inputs")


async def test_login_failures_are_uniform_and_tokens_are_checked(url: str) -> None:
    async with serve(url) as srv:
        a = srv.anonymous
        wrong = await a.post("/api/v1/auth/login", {"username": "admin", "password": "nope"})
        nobody = await a.post("/api/v1/auth/login", {"username": "ghost", "password": "nope"})
        assert wrong.status == nobody.status == 401
        assert wrong.body["detail"] == nobody.body["detail"] == "invalid username or password"
        assert wrong.headers["WWW-Authenticate"] == "Bearer"
        tokens = await a.post(
            "/api/v1/auth/login", {"username": "admin", "password": "test-admin-password-1"}
        )
        refreshed = await a.post(
            "/api/v1/auth/refresh", {"refresh_token": tokens.body["refresh_token"]}
        )
        assert refreshed.status == 200
        as_access = await a.post(
            "/api/v1/auth/refresh", {"refresh_token": tokens.body["access_token"]}
        )
        assert as_access.status == 401
        refresh_as_bearer = await a.as_(tokens.body["refresh_token"]).get("/api/v1/me")
        assert refresh_as_bearer.status == 401


async def test_no_default_admin_without_a_password(tmp_path: Path) -> None:
    runtime = await build(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        identity = await build_identity(runtime)
        with pytest.raises(IdentityInvalid, match="CADENZA_ADMIN_PASSWORD"):
            await identity.ensure_first_admin(None)
        with pytest.raises(IdentityInvalid, match="at least 12"):
            await identity.ensure_first_admin("short")
        assert await identity.store.count_users() == 0
    finally:
        await runtime.close()


async def test_readiness_reports_role_leader_database_bus_and_engine(url: str) -> None:
    async with serve(url) as srv:
        async with asyncio.timeout(30):  # the lease is taken and a round done just after start
            while True:
                r = await srv.anonymous.get("/health/readiness")
                if r.body.get("health_checked_at") is not None:
                    break
                await asyncio.sleep(0.02)
        assert r.status == 200
        checks = {"database": "ok", "bus": "ok", "engine": "ok"}
        checked_at = r.body["health_checked_at"]
        assert isinstance(checked_at, float)
        assert r.body == {
            "status": "ok",
            "role": "all",
            "leader": True,
            "health_checked_at": checked_at,
            "checks": checks,
        }


async def test_a_short_metrics_token_is_refused_without_being_shown(url: str) -> None:
    runtime = await build(Settings(database_url=url, metrics_token="s3cret-but-short"))
    try:
        identity = await build_identity(runtime)
        with pytest.raises(ValueError, match=r"at least 32 characters \(it has 16\)$") as err:
            await build_app(runtime, identity)
        assert "s3cret" not in str(err.value)
    finally:
        await runtime.close()
