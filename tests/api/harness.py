"""A real Cadenza API on a loopback uvicorn server, and a small client for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvicorn
from tests.net import free_port

from cadenza.bootstrap import Runtime, build, build_app, build_identity
from cadenza.bootstrap.serve import proxy_options
from cadenza.settings import Settings

ADMIN_PASSWORD = "test-admin-password-1"
# PostgreSQL has no key file beside it: the API processes of a test share this one
TOKEN_SECRET = "test-token-secret-" + "t" * 32


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any

    def json(self) -> Any:
        return self.body


@dataclass
class Client:
    """An HTTP client bound to the server; ``token``/``workspace`` are sent when set."""

    base: str
    session: aiohttp.ClientSession
    token: str | None = None
    workspace: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def as_(self, token: str | None, workspace: str | None = None) -> Client:
        return Client(self.base, self.session, token, workspace)

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        h = dict(self.headers)
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.workspace:
            h["X-Workspace"] = self.workspace
        h.update(extra or {})
        return h

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        async with self.session.request(
            method,
            self.base + path,
            json=json,
            data=data,
            headers=self._headers(headers),
            params=params,
        ) as r:
            text = await r.text()
            body: Any = text
            if r.content_type in ("application/json", "application/problem+json") and text:
                body = await r.json(content_type=None)
            return Reply(r.status, dict(r.headers), body)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json, **kw)

    async def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> Client:
        r = await self.post("/api/v1/auth/login", {"username": username, "password": password})
        assert r.status == 200, r.body
        return self.as_(r.body["access_token"], self.workspace)


@dataclass
class Server:
    base: str
    runtime: Runtime
    app: Any
    anonymous: Client
    admin: Client


@asynccontextmanager
async def serve(database_url: str, **overrides: Any) -> AsyncIterator[Server]:
    """Start the full API (engine included) on a free loopback port; ``run_worker=False``
    among the overrides runs no tasks (``cadenza serve --role api``); ``bus`` (an
    ``EventBus``) is shared instead of the one ``bus_url`` names (processes on one Redis)."""
    run_worker = bool(overrides.pop("run_worker", True))
    bus = overrides.pop("bus", None)
    if not database_url.startswith("sqlite"):
        overrides.setdefault("token_secret", TOKEN_SECRET)
    settings = Settings(
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        port=free_port(),
        shutdown_grace_s=0,
        sweep_interval_s=0.2,
        **overrides,
    )
    runtime = await build(settings, run_worker=run_worker, bus=bus)
    identity = await build_identity(runtime)
    await identity.ensure_first_admin(settings.admin_password)
    app = await build_app(runtime, identity)
    # the proxy options of `cadenza serve`: uvicorn's own default trusts X-Forwarded-For
    # from loopback, which is where every test client is
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.port, log_level="warning", **proxy_options(settings)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{settings.port}"
    try:
        async with aiohttp.ClientSession() as session:
            anonymous = Client(base, session)
            admin = await anonymous.login()
            yield Server(base, runtime, app, anonymous, admin)
    finally:
        server.should_exit = True
        await task


def document(process_id: str = "hello", **extra: Any) -> dict[str, Any]:
    """A small valid definition: one transform node echoing an input."""
    doc: dict[str, Any] = {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": process_id.title(),
        "inputs": {"type": "object", "properties": {"name": {"type": "string"}}},
        "nodes": [
            {"id": "greet", "type": "transform", "config": {"output": "hello {{ inputs.name }}"}}
        ],
        "outputs": {"greeting": "{{ nodes.greet.output }}"},
    }
    doc.update(extra)
    return doc
