"""Auth matrix: every route of the app (enumerated from it, so a new route is covered the day
it lands) refuses missing, invalid, expired and wrong-workspace credentials; only the checked-in
public list answers anonymously; each role gets exactly what ``ROLE_PERMISSIONS`` grants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from tests.api.fixtures import (
    ANSWERED,
    WS_A,
    Endpoint,
    World,
    approval_document,
    build_world,
    endpoints,
    fill,
    matrix_server,
    ok,
    probe,
    socket_outcome,
    start,
    waiting_approval,
    websocket,
)
from tests.api.harness import Client, Reply, document

from cadenza.application.identity import ROLE_PERMISSIONS, Permission, Role
from cadenza.interfaces.api.guard import PUBLIC_ROUTES, TOKEN_IN_QUERY

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Pinned here on purpose: making a route public takes a change to guard.py *and* to this test.
EXPECTED_PUBLIC = {
    ("GET", "/health"),
    ("GET", "/health/readiness"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/docs"),
    ("GET", "/docs/{asset}"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    ("GET", "/{path:path}"),
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "auth-matrix", "version": "1"},
    },
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    db = tmp_path_factory.mktemp("auth") / "auth.db"
    async with matrix_server(f"sqlite:///{db}") as srv:
        yield await build_world(srv)


def is_public(e: Endpoint) -> bool:
    return (e.method, e.path) in PUBLIC_ROUTES


def guarded(world: World) -> list[Endpoint]:
    return [e for e in endpoints(world.srv.app) if not is_public(e)]


async def attempt(world: World, e: Endpoint, c: Client, via_query: bool = False) -> int:
    """Call ``e`` as ``c``; the HTTP status (the handshake status for a WebSocket)."""
    path = fill(e.path, world.a.values())
    params = None
    if via_query and c.token:
        params = {"access_token": c.token}
        if c.workspace:
            params["workspace"] = c.workspace
        c = world.client(None)
    if e.method == "WEBSOCKET":
        if params:
            path += "?" + "&".join(f"{k}={v}" for k, v in params.items())
        headers = {"Authorization": f"Bearer {c.token}"} if c.token else {}
        if c.workspace:
            headers["X-Workspace"] = c.workspace
        # GraphQL sockets authenticate on connection_init: send the credential there too
        return await socket_outcome(c, path, headers, headers)
    if e.method == "MOUNT":
        statuses = [
            (await probe(c, "POST", path, json=INITIALIZE, headers=MCP_HEADERS, params=params)),
            (await probe(c, "GET", path, headers=MCP_HEADERS, params=params)),
        ]
        # the worst of the two: a mount that answers either without auth is open
        return min((r.status for r in statuses), key=lambda s: (s >= 400, s))
    body: dict[str, Any] | None = {} if e.method in ("POST", "PUT", "PATCH") else None
    return (await probe(c, e.method, path, json=body, params=params)).status


# ---- the route list --------------------------------------------------------------------------
async def test_routes_are_enumerated_from_the_app(world: World) -> None:
    found = endpoints(world.srv.app)
    keys = {(e.method, e.path) for e in found}
    schema = ok(await world.srv.anonymous.get("/openapi.json"))
    documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert documented - keys == set(), "routes in the OpenAPI schema but not enumerated"
    assert ("WEBSOCKET", "/api/v1/events/ws") in keys
    assert ("POST", "/api/v1/processes/instances") in keys
    assert len([e for e in found if not is_public(e)]) >= 25


def first_match(world: World, method: str, path: str) -> str | None:
    """The template of the route the app dispatches ``method path`` to (routes are tried in
    order; the first full match wins)."""
    kind = "websocket" if method == "WEBSOCKET" else "http"
    scope = {"type": kind, "path": path, "root_path": "", "method": method, "headers": []}
    for ctx in iter_route_contexts(world.srv.app.routes):
        match, _ = ctx.matches(scope)
        if match is Match.FULL:
            return str(ctx.path)
    return None


async def test_no_route_is_shadowed_by_an_earlier_one(world: World) -> None:
    """e.g. ``/execution/tasks/{task_id}`` must not swallow ``/execution/tasks/stream``."""
    shadowed = []
    for e in endpoints(world.srv.app):
        if e.method == "MOUNT" or e.path == "/{path:path}":
            continue
        got = first_match(world, e.method, fill(e.path, world.a.values()))
        if got != e.path:
            shadowed.append(f"{e} is answered by {got}")
    assert not shadowed, "\n".join(shadowed)


async def test_public_list_is_the_checked_in_one(world: World) -> None:
    assert set(PUBLIC_ROUTES) == EXPECTED_PUBLIC
    public_in_app = [e for e in endpoints(world.srv.app) if is_public(e)]
    for e in public_in_app:
        body: dict[str, Any] | None = {} if e.method == "POST" else None
        r = await probe(world.srv.anonymous, e.method, fill(e.path, world.a.values()), json=body)
        # login/refresh answer 422 to an empty body: they answered, without credentials
        assert r.status not in (401, 403), (str(e), r.status, r.body)
        assert r.status < 500, (str(e), r.status, r.body)
    assert ("GET", "/health") in {(e.method, e.path) for e in public_in_app}


# ---- refused credentials ---------------------------------------------------------------------
async def test_every_guarded_route_refuses_bad_credentials(world: World) -> None:
    credentials: dict[str, str | None] = {"no credentials": None, **world.tokens}
    wrong: list[str] = []
    calls = 0
    for e in guarded(world):
        for name, token in credentials.items():
            modes = [False, True] if e.path in TOKEN_IN_QUERY and token else [False]
            for via_query in modes:
                status = await attempt(world, e, world.client(token), via_query)
                calls += 1
                # a WebSocket is refused at the handshake (an HTTP error) or on
                # connection_init (a close code); it must never serve the caller
                expected = status != ANSWERED if e.method == "WEBSOCKET" else status == 401
                if not expected:
                    how = " (in the query)" if via_query else ""
                    wrong.append(f"{e} with {name}{how}: {status}")
    assert not wrong, "\n".join(wrong)
    assert calls > 200


async def test_every_guarded_route_refuses_another_workspace(world: World) -> None:
    """Valid credentials, but for a workspace the caller is not in: 403 (or 404)."""
    b_member_in_a = world.client(world.b_admin.token, WS_A)
    b_key_in_a = world.client(world.b_key_secret, WS_A)
    nowhere = world.client(world.members[Role.ADMIN].token, "no-such-workspace")
    wrong: list[str] = []
    for e in guarded(world):
        for name, c in {
            "B's admin with X-Workspace: A": b_member_in_a,
            "B's API key with X-Workspace: A": b_key_in_a,
            "A's admin with an unknown workspace": nowhere,
        }.items():
            for via_query in [False, True] if e.path in TOKEN_IN_QUERY else [False]:
                status = await attempt(world, e, c, via_query)
                if status not in (403, 404) and not (
                    e.method == "WEBSOCKET" and status != ANSWERED
                ):
                    wrong.append(f"{e} as {name}{' (query)' if via_query else ''}: {status}")
    assert not wrong, "\n".join(wrong)


# ---- roles -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """A representative call, the permissions it needs, and its status when allowed."""

    method: str
    path: str  # may hold {placeholders} filled from workspace A's ids
    needs: frozenset[Permission]
    status: int = 200
    body: Any = None
    route: str | None = None  # the route template, when ``path`` is already concrete


def _needs(*p: Permission) -> frozenset[Permission]:
    return frozenset(p)


R, RUN, E, AG, M, S = (
    Permission.READ,
    Permission.RUN,
    Permission.EDIT,
    Permission.AGENTS,
    Permission.MANAGE,
    Permission.SYSTEM,
)


def role_calls(world: World, fresh_task: str) -> list[Call]:
    """Each call succeeds when allowed: idempotent, or acting on something made for it."""
    a = world.a
    return [
        # read
        Call("GET", "/api/v1/processes/definitions", _needs(R)),
        Call("GET", "/api/v1/processes/definitions/{process_id}", _needs(R)),
        Call("GET", "/api/v1/processes/instances", _needs(R)),
        Call("GET", "/api/v1/processes/instances/{instance_id}", _needs(R)),
        Call("GET", "/api/v1/processes/instances/{instance_id}/events", _needs(R)),
        Call("GET", "/api/v1/processes/instances/{instance_id}/payloads/{sha256}", _needs(R)),
        Call("GET", "/api/v1/execution/tasks", _needs(R)),
        Call("GET", "/api/v1/execution/approvals", _needs(R)),
        Call("GET", "/api/v1/node-types", _needs(R)),
        Call("GET", "/metrics", _needs(R)),
        Call("GET", "/api/v1/events/stream", _needs(R)),
        Call("GET", "/api/v1/agents", _needs(R)),
        Call("GET", "/api/v1/agents/{agent_id}", _needs(R)),
        Call("GET", "/api/v1/agents/health", _needs(R)),
        Call("GET", "/api/v1/me", _needs(R)),
        Call("GET", "/api/v1/workspaces/{workspace_id}", _needs(R)),
        Call("GET", "/api/v1/workspaces/{workspace_id}/quotas", _needs(R)),
        Call("GET", "/api/v1/workspaces/{workspace_id}/usage", _needs(R)),
        # run
        Call("POST", "/api/v1/processes/instances", _needs(RUN), 201, {"process_id": a.hello_id}),
        Call(
            "POST",
            f"/api/v1/processes/instances/{a.completed}/cancel",  # answers "already finished"
            _needs(RUN),
            route="/api/v1/processes/instances/{instance_id}/cancel",
        ),
        Call(
            "POST",
            f"/api/v1/execution/tasks/{fresh_task}/approve",
            _needs(RUN),
            body={"comment": "ok"},
            route="/api/v1/execution/tasks/{task_id}/approve",
        ),
        Call("POST", "/api/v1/agents/{agent_id}/heartbeat", _needs(RUN)),
        # edit
        Call(  # the same content answers with the version that has it
            "POST",
            "/api/v1/processes/definitions",
            _needs(E),
            201,
            {"document": document("a-hello")},
        ),
        Call(  # publishing a published version is a no-op
            "POST",
            "/api/v1/processes/definitions/{process_id}/versions/{version}/publish",
            _needs(E),
        ),
        Call(  # a test run of a draft is for editors
            "POST",
            "/api/v1/processes/instances",
            _needs(RUN, E),
            201,
            {"process_id": a.process_id, "version": a.draft},
        ),
        # agents
        Call("PATCH", "/api/v1/agents/{agent_id}", _needs(AG), body={"weight": 1}),
        # manage
        Call("GET", "/api/v1/api-keys", _needs(M)),
        Call("POST", "/api/v1/api-keys", _needs(M), 201, {"name": "role-test", "role": "viewer"}),
        Call("GET", "/api/v1/workspaces/{workspace_id}/members", _needs(M)),
        Call("GET", "/api/v1/workspaces/{workspace_id}/deletion", _needs(M)),
        Call("GET", "/api/v1/workspaces/{workspace_id}/secrets", _needs(E)),
        Call(
            "PUT",
            "/api/v1/workspaces/{workspace_id}/secrets/{name}",
            _needs(M),
            body={"value": "role-test-value"},
        ),
        # system
        Call("GET", "/api/v1/users", _needs(S)),
        Call("GET", "/api/v1/settings", _needs(S)),
        Call("PUT", "/api/v1/workspaces/{workspace_id}/quotas", _needs(S), body={}),
    ]


def allowed(role: Role | None, needs: frozenset[Permission]) -> bool:
    """From the policy table, not from the code: None is a system admin."""
    if role is None:
        return True
    return needs <= ROLE_PERMISSIONS[role]


@pytest.mark.parametrize("role", [*Role, None], ids=[*(r.value for r in Role), "system-admin"])
async def test_role_permissions_follow_the_policy_table(world: World, role: Role | None) -> None:
    caller = world.members[role] if role else world.srv.admin.as_(world.srv.admin.token, WS_A)
    admin = world.members[Role.ADMIN]
    fresh_task = await waiting_approval(admin, await start(admin, world.a.process_id))
    routes = {(e.method, e.path) for e in endpoints(world.srv.app)}
    present = [c for c in role_calls(world, fresh_task) if (c.method, c.route or c.path) in routes]
    wrong: list[str] = []
    for call in present:
        path = fill(call.path, world.a.values())
        r: Reply = await probe(caller, call.method, path, json=call.body)
        want = call.status if allowed(role, call.needs) else 403
        if r.status != want:
            wrong.append(f"{call.method} {path}: {r.status}, expected {want} ({r.body})")
    assert not wrong, "\n".join(wrong)
    exercised = set().union(*(call.needs for call in present))
    assert exercised == set(Permission), f"no representative call for {set(Permission) - exercised}"


async def test_api_keys_carry_their_role(world: World) -> None:
    """An operator key may run but not edit, whoever made it."""
    key = world.client(world.a.key_secret)
    run = await key.post("/api/v1/processes/instances", {"process_id": world.a.hello_id})
    assert run.status == 201, run.body
    edit = await key.post(
        "/api/v1/processes/definitions", {"document": approval_document("a-key-made")}
    )
    assert edit.status == 403, edit.body


async def test_streams_accept_the_token_in_the_query_only_where_listed(world: World) -> None:
    token = world.members[Role.VIEWER].token
    assert token
    anonymous = world.client(None)
    for path in ("/api/v1/processes/instances", "/api/v1/processes/definitions"):
        r = await probe(anonymous, "GET", path, params={"access_token": token})
        assert r.status == 401, (path, r.status)
    r = await probe(anonymous, "GET", "/api/v1/events/stream", params={"access_token": token})
    assert r.status == 200
    got = await websocket(anonymous, f"/api/v1/events/ws?access_token={token}")
    assert isinstance(got, aiohttp.ClientWebSocketResponse)
    await got.close()
