"""Shared setup of the security matrices: two workspaces, a user per role, and workspace A's
data in every interesting state (definitions, instances, tasks, an API key, an agent).

Everything is made through the running server's own identity service and API, so the
matrices exercise the same code paths as real callers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, Route, WebSocketRoute
from tests.api.harness import Client, Reply, Server, document, serve
from tests.mariadb import create_database as create_mariadb_database
from tests.pg import create_database

from cadenza.application.config_model import McpSpec
from cadenza.application.identity import API_KEY_PREFIX, Identity, Principal, Role
from cadenza.application.ports_api import Workspace
from cadenza.bootstrap import token_secret
from cadenza.infrastructure.security import JwtCodec
from cadenza.interfaces.api.services import ApiServices

PASSWORD = "matrix-password-123"  # test users only
# the matrices make hundreds of calls from one address: limits are tested elsewhere
NO_LIMITS: dict[str, Any] = {"rate_limit": "100000/minute", "login_rate_limit": "100000/minute"}
WS_A = "team-a"
WS_B = "team-b"
SECRET_INPUT = "only-for-team-a"  # the input of A's worker task
SECRET_VALUE = "team-a-secret-value-7f3c"  # the value of A's workspace secret A_TOKEN
# the input of A's running instance: over the offload threshold (64 KiB), so its instance
# row shows a blob marker and the lazy payload route has something of A's to serve
LARGE_INPUT = "team-a-large-input-" + "x" * 70_000
PLACEHOLDER = re.compile(r"\{(\w+)(?::\w+)?\}")


def matrix_server(database_url: str) -> AbstractAsyncContextManager[Server]:
    return serve(database_url, **NO_LIMITS)


# ---- routes ----------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Endpoint:
    """One thing a client can call: an HTTP method and path, a WebSocket, or a mounted app."""

    method: str  # GET, POST, ... or WEBSOCKET or MOUNT
    path: str

    @property
    def params(self) -> list[str]:
        return PLACEHOLDER.findall(self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every route of the app, routers and mounts included (read from the app, so a route
    added tomorrow is in the list tomorrow). HEAD twins of GET routes are left out."""
    found: set[Endpoint] = set()
    for ctx in iter_route_contexts(app.routes):
        route, path = ctx.original_route, str(ctx.path)
        if isinstance(route, APIWebSocketRoute | WebSocketRoute):
            found.add(Endpoint("WEBSOCKET", path))
        elif isinstance(route, Mount):
            found.add(Endpoint("MOUNT", path))
        elif isinstance(route, APIRoute | Route):
            methods = set(ctx.methods or ())
            found.update(Endpoint(m, path) for m in methods if m != "HEAD" or "GET" not in methods)
        else:
            raise AssertionError(f"a route of a kind the matrices do not know: {route!r}")
    return sorted(found)


def fill(path: str, values: Mapping[str, str]) -> str:
    """The path with each ``{name}`` replaced; unknown names fail loudly, so a new route
    with a new parameter gets a deliberate value in ``Tenant.values``."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise AssertionError(f"no test value for path parameter {name!r} in {path}")
        return values[name]

    return PLACEHOLDER.sub(one, path)


# ---- documents -------------------------------------------------------------------------------
def approval_document(process_id: str) -> dict[str, Any]:
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": "Approval flow",
        "nodes": [
            {"id": "ask", "type": "approval", "config": {"title": "Ship it?"}},
            {"id": "done", "type": "transform", "config": {"output": "shipped"}},
        ],
        "edges": [{"from": "ask.approved", "to": "done"}],
    }


def broken_document(process_id: str) -> dict[str, Any]:
    """Valid, and fails at run time (a template dividing by zero)."""
    return document(
        process_id,
        nodes=[{"id": "greet", "type": "transform", "config": {"output": "{{ 1 // 0 }}"}}],
    )


def worker_document(process_id: str, capability: str) -> dict[str, Any]:
    """One task for a worker agent with ``capability``, sent the input ``secret``."""
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": "Worker flow",
        "inputs": {"type": "object", "properties": {"secret": {"type": "string"}}},
        "nodes": [
            {
                "id": "job",
                "type": "task",
                "requires": [capability],
                "timeout": "10m",
                "config": {"input": "{{ inputs.secret }}", "agent_type": "worker"},
            }
        ],
        "outputs": {"result": "{{ nodes.job.output.result }}"},
    }


# ---- the world -------------------------------------------------------------------------------
@dataclass
class Tenant:
    """Workspace A's resources, in every state a route could act on."""

    workspace: str
    process_id: str  # the approval flow: v1 published, v2 draft
    published: int
    draft: int
    hello_id: str  # a one-node process, published
    broken_id: str  # published; its instances fail
    worker_id: str  # published; one task for A's worker agent
    running: str  # waiting on ``approval_task``
    approval_task: str
    completed: str
    completed_task: str
    failed: str
    failed_task: str
    key_id: str
    key_secret: str
    agent_id: str  # a worker agent of A's
    working: str  # an instance of ``worker_id`` whose task A's worker has taken
    assignment_id: str  # that task's open assignment
    user_id: str  # the workspace's admin (a member, not a system admin)
    payload_sha: str = ""  # the offloaded inputs of ``running`` (GET .../payloads/{sha256})

    def values(self) -> dict[str, str]:
        """A value for each path parameter name the API uses."""
        return {
            "process_id": self.process_id,
            "version": str(self.published),
            "instance_id": self.running,
            "task_id": self.approval_task,
            "key_id": self.key_id,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "workspace_id": self.workspace,
            "path": "index.html",
            "asset": "swagger-ui.css",  # GET /docs/{asset}
            # shared, configured things (no workspace owns them)
            "name": "offline",
            "tool": "get_time",
            # runtime configuration stored for A (its own scope); live settings are shared
            "provider": A_PROVIDER,
            "server": A_SERVER,
            "setting": "mcp_breaker_failures",
            "assignment_id": self.assignment_id,
            "sha256": self.payload_sha,
        }

    def variants(self) -> dict[str, list[str]]:
        """Every id of A worth trying for each path parameter."""
        return {
            **{k: [v] for k, v in self.values().items()},
            "process_id": [self.process_id, self.hello_id, self.broken_id, self.worker_id],
            "version": [str(self.published), str(self.draft)],
            "instance_id": [self.running, self.completed, self.failed, self.working],
            "task_id": [self.approval_task, self.completed_task, self.failed_task],
        }

    def ids(self) -> list[str]:
        """Every id of A's processes, instances, tasks, agent and assignment."""
        return [
            *(self.process_id, self.hello_id, self.broken_id, self.worker_id),
            *(self.running, self.completed, self.failed, self.working),
            *(self.approval_task, self.completed_task, self.failed_task),
            *(self.agent_id, self.assignment_id),
        ]

    def secrets(self) -> list[str]:
        """Strings that must never appear in what another workspace sees."""
        return [
            *self.ids(),
            self.key_id,
            SECRET_INPUT,
            SECRET_VALUE,
            self.payload_sha,
            A_PROVIDER,
            A_SERVER,
        ]


@dataclass
class World:
    srv: Server
    identity: Identity
    a: Tenant
    members: dict[Role, Client]  # users of workspace A, one per role, X-Workspace: A
    b_admin: Client  # admin of workspace B only, X-Workspace: B
    b_admin_id: str
    b_process: str  # a published process of B
    b_key_secret: str  # an admin API key of B
    tokens: dict[str, str] = field(default_factory=dict)  # name -> a refused credential
    notes: dict[str, Any] = field(default_factory=dict)  # what a module keeps between tests

    @property
    def services(self) -> ApiServices:
        found: ApiServices = self.srv.app.state.services
        return found

    def client(self, token: str | None, workspace: str | None = None) -> Client:
        return self.srv.anonymous.as_(token, workspace)


async def eventually(
    probe: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 10.0
) -> Any:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def probe(
    c: Client,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Reply:
    """One request that never hangs on a stream: an event-stream body is not read."""
    h = dict(headers or {})
    if c.token:
        h.setdefault("Authorization", f"Bearer {c.token}")
    if c.workspace:
        h.setdefault("X-Workspace", c.workspace)
    timeout = aiohttp.ClientTimeout(total=15)
    async with c.session.request(
        method, c.base + path, json=json, headers=h, params=params, timeout=timeout
    ) as r:
        body: Any = ""
        if r.content_type != "text/event-stream":
            text = await r.text()
            body = text
            if r.content_type in ("application/json", "application/problem+json") and text:
                body = await r.json(content_type=None)
        return Reply(r.status, dict(r.headers), body)


async def websocket(
    c: Client, path: str, headers: Mapping[str, str] | None = None
) -> int | aiohttp.ClientWebSocketResponse:
    """The handshake status when the server refuses, else the open socket (which offered the
    ``graphql-transport-ws`` subprotocol, ignored by the other sockets)."""
    url = c.base.replace("http://", "ws://", 1) + path
    try:
        return await c.session.ws_connect(
            url,
            headers=headers,
            protocols=("graphql-transport-ws",),
            timeout=aiohttp.ClientWSTimeout(10),
        )
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


ANSWERED = 101  # what ``socket_outcome`` returns when a socket served the caller


async def socket_outcome(
    c: Client, path: str, headers: Mapping[str, str], init: Mapping[str, Any] | None
) -> int:
    """Open a WebSocket and say how it ended: the HTTP status of a refused handshake, the
    close code when the server closed it after ``connection_init``, or ``ANSWERED`` when it
    sent anything else (an acknowledgement or an event)."""
    got = await websocket(c, path, headers)
    if isinstance(got, int):
        return got
    try:
        if got.protocol == "graphql-transport-ws":
            await got.send_json({"type": "connection_init", "payload": dict(init or {})})
        msg = await got.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return int(got.close_code or msg.data or 1000)
        if msg.type == aiohttp.WSMsgType.TEXT:
            return ANSWERED
        return int(got.close_code or 1006)
    except TimeoutError:
        return ANSWERED  # open and quiet: nothing refused it
    finally:
        await got.close()


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body)
    return reply.body


async def _member(world_identity: Identity, workspace: str, name: str, role: Role) -> str:
    user = await world_identity.create_user(name, PASSWORD)
    await world_identity.store.set_member(workspace, user.id, role.value)
    return user.id


async def _token(identity: Identity, username: str) -> str:
    return (await identity.login(username, PASSWORD)).access_token


async def _publish(c: Client, doc: dict[str, Any]) -> int:
    body = ok(
        await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True}), 201
    )
    return int(body["version"])


async def start(c: Client, process_id: str, inputs: dict[str, Any] | None = None) -> str:
    body = {"process_id": process_id, **({"inputs": inputs} if inputs else {})}
    return str(ok(await c.post("/api/v1/processes/instances", body), 201)["id"])


async def settled(c: Client, instance_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = ok(await c.get(f"/api/v1/processes/instances/{instance_id}"))
        return body if body["status"] == status else None

    found: dict[str, Any] = await eventually(probe, f"instance {instance_id} {status}")
    return found


async def waiting_approval(c: Client, instance_id: str) -> str:
    async def probe() -> str | None:
        rows = ok(await c.get("/api/v1/execution/approvals"))
        return next((r["id"] for r in rows if r["instance_id"] == instance_id), None)

    found: str = await eventually(probe, f"an approval task of {instance_id}")
    return found


A_PROVIDER, A_SERVER = "a-cfg-provider", "a-cfg-server"


async def _a_config(srv: Server, admin: Client) -> None:
    """A provider and an MCP server stored in A's own scope (the server is stored directly:
    a stdio command needs a system admin through the API; it is never started here)."""
    ok(await admin.request("PUT", f"/api/v1/config/providers/{A_PROVIDER}", {"kind": "offline"}))
    config = srv.runtime.config
    assert config is not None
    spec = McpSpec(A_SERVER, command="a-cfg-never-started")
    await config.save(await config.prepare_mcp(WS_A, spec, "test", validate=False))


async def _tenant_a(srv: Server, identity: Identity, admin: Client, admin_id: str) -> Tenant:
    flow, hello, broken = "a-approval-flow", "a-hello", "a-broken"
    published = await _publish(admin, approval_document(flow))
    draft_doc = approval_document(flow)
    draft_doc["nodes"][1]["config"]["output"] = "shipped, again"
    draft = ok(await admin.post("/api/v1/processes/definitions", {"document": draft_doc}), 201)
    await _publish(admin, document(hello))
    await _publish(admin, broken_document(broken))
    running = await start(admin, flow, {"large": LARGE_INPUT})
    completed = await start(admin, hello)
    failed = await start(admin, broken)
    approval_task = await waiting_approval(admin, running)
    marker = ok(await admin.get(f"/api/v1/processes/instances/{running}"))["inputs"]
    assert marker.get("$cadenza") == "blob", marker  # offloaded: the lazy route serves it
    done = await settled(admin, completed, "completed")
    lost = await settled(admin, failed, "failed")
    failed_task = next(t["id"] for t in lost["tasks"] if t["status"] == "failed")
    owner = Principal(WS_A, Role.ADMIN, user_id=admin_id)
    key, secret = await identity.create_key(owner, "a-automation", Role.OPERATOR, None)
    agent = ok(
        await admin.post(
            "/api/v1/agents/register",
            {"name": "a-worker", "type": "worker", "capabilities": ["a-capability"]},
        ),
        201,
    )
    await _publish(admin, worker_document("a-worker-flow", "a-capability"))
    path = f"/api/v1/workspaces/{WS_A}/secrets/A_TOKEN"
    ok(await admin.request("PUT", path, {"value": SECRET_VALUE}))
    await _a_config(srv, admin)
    body = {"process_id": "a-worker-flow", "inputs": {"secret": SECRET_INPUT}}
    working = ok(await admin.post("/api/v1/processes/instances", body), 201)["id"]
    taken = ok(await admin.post("/api/v1/workers/poll", {"agent_id": agent["id"], "timeout_s": 10}))
    assert taken["instance_id"] == working, taken
    return Tenant(
        workspace=WS_A,
        process_id=flow,
        published=published,
        draft=int(draft["version"]),
        hello_id=hello,
        broken_id=broken,
        running=running,
        approval_task=approval_task,
        completed=completed,
        completed_task=done["tasks"][-1]["id"],
        failed=failed,
        failed_task=failed_task,
        worker_id="a-worker-flow",
        key_id=key.id,
        key_secret=secret,
        agent_id=agent["id"],
        working=working,
        assignment_id=taken["id"],
        user_id=admin_id,
        payload_sha=str(marker["sha256"]),
    )


async def build_world(srv: Server) -> World:
    """Workspaces A and B, a member of A per role, B's admin, A's data and bad credentials."""
    services: ApiServices = srv.app.state.services
    identity = services.identity
    store = identity.store
    for ws in (WS_A, WS_B):
        await store.add_workspace(Workspace(ws, ws, time.time()))
    ids = {role: await _member(identity, WS_A, f"a-{role.value}", role) for role in Role}
    members = {
        role: srv.anonymous.as_(await _token(identity, f"a-{role.value}"), WS_A) for role in Role
    }
    b_admin_id = await _member(identity, WS_B, "b-admin", Role.ADMIN)
    b_admin = srv.anonymous.as_(await _token(identity, "b-admin"), WS_B)
    a = await _tenant_a(srv, identity, members[Role.ADMIN], ids[Role.ADMIN])
    b_process = "b-hello"
    await _publish(b_admin, document(b_process))
    _, b_key = await identity.create_key(
        Principal(WS_B, Role.ADMIN, user_id=b_admin_id), "b-automation", Role.ADMIN, None
    )
    world = World(srv, identity, a, members, b_admin, b_admin_id, b_process, b_key)
    world.tokens = await refused_credentials(world, ids[Role.ADMIN])
    return world


async def refused_credentials(world: World, user_id: str) -> dict[str, str]:
    """Credentials the server must answer with 401, each for a different reason."""
    identity, store = world.identity, world.identity.store
    codec = JwtCodec(token_secret(world.srv.runtime.settings))
    owner = Principal(WS_A, Role.ADMIN, user_id=user_id)
    revoked, revoked_secret = await identity.create_key(owner, "revoked", Role.ADMIN, None)
    assert await store.revoke_key(WS_A, revoked.id)
    _, expired_key = await identity.create_key(owner, "expired", Role.ADMIN, -1)
    disabled = await identity.create_user("a-disabled", PASSWORD)
    await store.set_member(WS_A, disabled.id, Role.ADMIN.value)
    disabled_token = await _token(identity, "a-disabled")
    _, disabled_creators_key = await identity.create_key(
        Principal(WS_A, Role.ADMIN, user_id=disabled.id), "orphan", Role.ADMIN, None
    )
    await identity.update_user(disabled.id, disabled=True)
    signed_out = await identity.login("a-admin", PASSWORD)
    await identity.logout(await identity.authenticate(signed_out.access_token, WS_A))
    live = await identity.authenticate(await _token(identity, "a-admin"), WS_A)
    return {
        "garbage bearer": "garbage-" + "g" * 24,
        "expired access token": codec.issue(
            {"sub": user_id, "typ": "access", "sid": live.session_id}, -5
        ),
        "token of another secret": JwtCodec("another-secret-" + "s" * 32).issue(
            {"sub": user_id, "typ": "access", "sid": live.session_id}, 900
        ),
        "access token without a session": codec.issue({"sub": user_id, "typ": "access"}, 900),
        "access token of a signed-out session": signed_out.access_token,
        "revoked API key": revoked_secret,
        "expired API key": expired_key,
        "unknown API key": API_KEY_PREFIX + "u" * 43,
        "API key of a disabled user": disabled_creators_key,
        "refresh token as access token": signed_out.refresh_token,
        "token of a disabled user": disabled_token,
        "token without a subject": codec.issue({"typ": "access", "sid": live.session_id}, 900),
    }


def product(variants: Mapping[str, list[str]], params: list[str]) -> Iterator[dict[str, str]]:
    """Each combination of candidate values for ``params``."""
    combos: list[dict[str, str]] = [{}]
    for name in params:
        if name not in variants:
            raise AssertionError(f"no test values for path parameter {name!r}")
        combos = [{**c, name: v} for c in combos for v in variants[name]]
    yield from combos


def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str
) -> str:
    """A fresh database of the backend ``request.param`` names (``BACKENDS``), for a
    module-scoped fixture: a database on the session's server, or a SQLite file ``name``."""
    if request.param == "postgres":
        return create_database(request.getfixturevalue("postgres_url"))
    if request.param == "mariadb":
        return create_mariadb_database(request.getfixturevalue("mariadb_url"))
    return f"sqlite:///{tmp_path_factory.mktemp(name) / f'{name}.db'}"
