"""Every mutating route leaves an audit row: the routes are enumerated from the app (like the
auth matrix), each is called successfully once, and the row carrying that call's request id
must be there with the expected action. Routes that change nothing are listed in ``EXEMPT``
with the reason; a new mutating route fails this test until it audits or is listed.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from tests.api.fixtures import (
    NO_LIMITS,
    PASSWORD,
    WS_A,
    World,
    broken_document,
    build_world,
    endpoints,
    ok,
    probe,
    settled,
    start,
    waiting_approval,
)
from tests.api.harness import Client, document, serve

from cadenza.application.audit import NEW_ID
from cadenza.application.identity import Role
from cadenza.infrastructure.sql.tables import audit
from cadenza.settings import McpServerSettings

pytestmark = pytest.mark.asyncio(loop_scope="module")

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
MCP_SCRIPT = Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py"

# Routes that change nothing an operator audits. Keep it minimal: the test checks that each
# entry is a route of the app and that it is not also given a call below.
EXEMPT: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/processes/definitions/validate"): "checks a document; stores nothing",
    ("POST", "/api/v1/auth/refresh"): "a new access token for an existing (audited) session",
    ("POST", "/api/v1/providers/{name}/test"): "a probe call to a provider; changes nothing",
    ("POST", "/api/v1/agents/{agent_id}/heartbeat"): "liveness of a worker, many per minute",
    ("POST", "/api/v1/workers/poll"): "a worker taking a task: run history, in the journal",
    ("POST", "/api/v1/workers/assignments/{assignment_id}/complete"): "a task result: journal",
    ("POST", "/api/v1/workers/assignments/{assignment_id}/fail"): "a task failure: journal",
    # a protocol endpoint: its mutations call the same services as the REST routes, which
    # audit (test_graphql_mutations_are_audited)
    ("POST", "/graphql"): "GraphQL; its mutations are audited by the services they call",
    # MCP: a tool call starts an instance through Processes.start, which audits it
    ("POST", "/mcp"): "MCP protocol messages; tool calls are audited as instance.start",
    ("DELETE", "/mcp"): "ends an MCP protocol session; changes nothing",
}


@dataclass(frozen=True)
class Step:
    client: Client
    path: str
    action: str  # the audit action the call must record
    body: Any = None
    status: int = 200


Builder = Callable[[World], Awaitable[Step]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("audit-walk")
    server = McpServerSettings(
        name="test", command=sys.executable, args=[str(MCP_SCRIPT), "--transport", "stdio"]
    )
    async with serve(f"sqlite:///{tmp / 'walk.db'}", mcp_servers=[server], **NO_LIMITS) as srv:
        yield await build_world(srv)


def admin(w: World) -> Client:
    return w.members[Role.ADMIN]


def system(w: World) -> Client:
    return w.srv.admin.as_(w.srv.admin.token, WS_A)


async def _fresh_user(w: World, name: str) -> str:
    body = {"username": name, "password": PASSWORD}
    return str(ok(await system(w).post("/api/v1/users", body), 201)["id"])


async def _token(w: World, name: str) -> str:
    r = await w.srv.anonymous.post("/api/v1/auth/login", {"username": name, "password": PASSWORD})
    return str(ok(r)["access_token"])


async def _agent(w: World, name: str) -> str:
    body = {"name": name, "type": "worker", "capabilities": ["audit"]}
    return str(ok(await admin(w).post("/api/v1/agents/register", body), 201)["id"])


async def _approval(w: World) -> tuple[str, str]:
    iid = await start(admin(w), w.a.process_id)
    return iid, await waiting_approval(admin(w), iid)


async def _failed(w: World, process_id: str) -> dict[str, Any]:
    await _publish(w, broken_document(process_id))
    return await settled(admin(w), await start(admin(w), process_id), "failed")


async def _publish(w: World, doc: dict[str, Any]) -> None:
    body = {"document": doc, "publish": True}
    ok(await admin(w).post("/api/v1/processes/definitions", body), 201)


async def _instances_retry(w: World) -> Step:
    failed = await _failed(w, "audit-broken-1")
    return Step(admin(w), f"/api/v1/processes/instances/{failed['id']}/retry", "instance.retry")


async def _task_retry(w: World) -> Step:
    failed = await _failed(w, "audit-broken-2")
    task = next(t["id"] for t in failed["tasks"] if t["status"] == "failed")
    return Step(admin(w), f"/api/v1/execution/tasks/{task}/retry", "instance.retry")


async def _signal(w: World) -> Step:
    iid, task = await _approval(w)
    body = {"task_id": task, "payload": {"decision": "approve"}}
    return Step(admin(w), f"/api/v1/processes/instances/{iid}/signal", "task.approve", body)


async def _decide(w: World, verb: str) -> Step:
    _, task = await _approval(w)
    return Step(admin(w), f"/api/v1/execution/tasks/{task}/{verb}", f"task.{verb}", {})


async def _logout(w: World, route: str) -> Step:
    name = f"audit-{route}"
    user = await _fresh_user(w, name)
    ok(
        await system(w).request(
            "PUT", f"/api/v1/workspaces/{WS_A}/members/{user}", {"role": "viewer"}
        )
    )
    me = w.client(await _token(w, name), WS_A)
    return Step(me, f"/api/v1/auth/{route}", f"auth.{route.replace('-', '_')}", status=204)


async def _key(w: World) -> str:
    body = {"name": "audit-walk", "role": "viewer"}
    return str(ok(await admin(w).post("/api/v1/api-keys", body), 201)["id"])


async def _workspace(w: World) -> str:
    body = {"name": "audit-walk-space"}
    return str(ok(await system(w).post("/api/v1/workspaces", body), 201)["id"])


async def _member(w: World) -> str:
    user = await _fresh_user(w, "audit-member")
    path = f"/api/v1/workspaces/{WS_A}/members/{user}"
    ok(await system(w).request("PUT", path, {"role": "viewer"}))
    return user


def _steps() -> dict[tuple[str, str], Builder]:
    """A successful call of each mutating route (fresh targets for destructive ones)."""
    defs = "/api/v1/processes/definitions"
    return {
        ("POST", defs): lambda w: _ret(
            Step(admin(w), defs, "definition.save", {"document": document("audit-1")}, 201)
        ),
        ("POST", defs + "/{process_id}/versions/{version}/publish"): lambda w: _status(
            w, "audit-published", "publish"
        ),
        ("POST", defs + "/{process_id}/versions/{version}/archive"): lambda w: _status(
            w, "audit-archived", "archive"
        ),
        ("DELETE", defs + "/{process_id}"): _delete_process,
        ("POST", "/api/v1/processes/instances"): lambda w: _ret(
            Step(
                admin(w),
                "/api/v1/processes/instances",
                "instance.start",
                {"process_id": w.a.hello_id},
                201,
            )
        ),
        ("POST", "/api/v1/processes/instances/{instance_id}/cancel"): _cancel,
        ("POST", "/api/v1/processes/instances/{instance_id}/retry"): _instances_retry,
        ("POST", "/api/v1/execution/tasks/{task_id}/retry"): _task_retry,
        ("POST", "/api/v1/processes/instances/{instance_id}/signal"): _signal,
        ("POST", "/api/v1/execution/tasks/{task_id}/approve"): lambda w: _decide(w, "approve"),
        ("POST", "/api/v1/execution/tasks/{task_id}/reject"): lambda w: _decide(w, "reject"),
        ("POST", "/api/v1/agents/register"): lambda w: _ret(
            Step(
                admin(w),
                "/api/v1/agents/register",
                "agent.register",
                {"name": "audit-new", "type": "worker", "capabilities": ["x"]},
                201,
            )
        ),
        ("PATCH", "/api/v1/agents/{agent_id}"): _agent_patch,
        ("POST", "/api/v1/agents/{agent_id}/drain"): _agent_drain,
        ("POST", "/api/v1/agents/{agent_id}/resume"): _agent_resume,
        ("DELETE", "/api/v1/agents/{agent_id}"): _agent_delete,
        ("POST", "/api/v1/mcp-servers/{name}/tools/{tool}/approve"): lambda w: _ret(
            Step(system(w), "/api/v1/mcp-servers/test/tools/echo/approve", "mcp_tool.approve")
        ),
        ("POST", "/api/v1/auth/login"): lambda w: _ret(
            Step(
                w.srv.anonymous,
                "/api/v1/auth/login",
                "auth.login",
                {"username": "a-viewer", "password": PASSWORD},
            )
        ),
        ("POST", "/api/v1/auth/logout"): lambda w: _logout(w, "logout"),
        ("POST", "/api/v1/auth/logout-all"): lambda w: _logout(w, "logout-all"),
        ("POST", "/api/v1/users"): lambda w: _ret(
            Step(
                system(w),
                "/api/v1/users",
                "user.create",
                {"username": "audit-created", "password": PASSWORD},
                201,
            )
        ),
        ("PATCH", "/api/v1/users/{user_id}"): _user_patch,
        ("DELETE", "/api/v1/users/{user_id}/sessions"): _user_sessions,
        ("POST", "/api/v1/workspaces"): lambda w: _ret(
            Step(system(w), "/api/v1/workspaces", "workspace.create", {"name": "audit-ws"}, 201)
        ),
        ("DELETE", "/api/v1/workspaces/{workspace_id}"): _workspace_delete,
        ("PUT", "/api/v1/workspaces/{workspace_id}/members/{user_id}"): _member_set,
        ("DELETE", "/api/v1/workspaces/{workspace_id}/members/{user_id}"): _member_remove,
        ("POST", "/api/v1/api-keys"): lambda w: _ret(
            Step(
                admin(w), "/api/v1/api-keys", "api_key.create", {"name": "k", "role": "viewer"}, 201
            )
        ),
        ("DELETE", "/api/v1/api-keys/{key_id}"): _key_revoke,
        ("PUT", "/api/v1/workspaces/{workspace_id}/secrets/{name}"): lambda w: _ret(
            Step(
                admin(w),
                f"/api/v1/workspaces/{WS_A}/secrets/AUDIT_WALK",
                "secret.put",
                {"value": "walk-secret-value"},
            )
        ),
        ("DELETE", "/api/v1/workspaces/{workspace_id}/secrets/{name}"): _secret_delete,
    }


async def _ret(step: Step) -> Step:
    return step


async def _status(w: World, process_id: str, verb: str) -> Step:
    body = {"document": document(process_id)}
    ok(await admin(w).post("/api/v1/processes/definitions", body), 201)
    path = f"/api/v1/processes/definitions/{process_id}/versions/1/{verb}"
    return Step(admin(w), path, f"definition.{verb}")


async def _delete_process(w: World) -> Step:
    await _publish(w, document("audit-2"))
    return Step(admin(w), "/api/v1/processes/definitions/audit-2", "definition.delete")


async def _cancel(w: World) -> Step:
    iid, _ = await _approval(w)
    return Step(admin(w), f"/api/v1/processes/instances/{iid}/cancel", "instance.cancel", {})


async def _agent_patch(w: World) -> Step:
    agent = await _agent(w, "audit-patch")
    return Step(admin(w), f"/api/v1/agents/{agent}", "agent.update", {"weight": 2})


async def _agent_drain(w: World) -> Step:
    agent = await _agent(w, "audit-drain")
    return Step(admin(w), f"/api/v1/agents/{agent}/drain", "agent.drain")


async def _agent_resume(w: World) -> Step:
    agent = await _agent(w, "audit-resume")
    ok(await admin(w).post(f"/api/v1/agents/{agent}/drain"))
    return Step(admin(w), f"/api/v1/agents/{agent}/resume", "agent.resume")


async def _agent_delete(w: World) -> Step:
    agent = await _agent(w, "audit-delete")
    return Step(admin(w), f"/api/v1/agents/{agent}", "agent.delete", status=204)


async def _user_patch(w: World) -> Step:
    user = await _fresh_user(w, "audit-patched")
    return Step(system(w), f"/api/v1/users/{user}", "user.update", {"disabled": True})


async def _user_sessions(w: World) -> Step:
    user = await _fresh_user(w, "audit-signed-out")
    await _token(w, "audit-signed-out")
    return Step(system(w), f"/api/v1/users/{user}/sessions", "user.revoke_sessions", status=204)


async def _workspace_delete(w: World) -> Step:
    ws = await _workspace(w)
    return Step(system(w), f"/api/v1/workspaces/{ws}", "workspace.delete", status=204)


async def _member_set(w: World) -> Step:
    user = await _fresh_user(w, "audit-joiner")
    path = f"/api/v1/workspaces/{WS_A}/members/{user}"
    return Step(system(w), path, "membership.set", {"role": "viewer"})


async def _member_remove(w: World) -> Step:
    user = await _member(w)
    path = f"/api/v1/workspaces/{WS_A}/members/{user}"
    return Step(admin(w), path, "membership.remove", status=204)


async def _key_revoke(w: World) -> Step:
    key = await _key(w)
    return Step(admin(w), f"/api/v1/api-keys/{key}", "api_key.revoke", status=204)


async def _secret_delete(w: World) -> Step:
    path = f"/api/v1/workspaces/{WS_A}/secrets/AUDIT_GONE"
    ok(await admin(w).request("PUT", path, {"value": "soon-gone-value"}))
    return Step(admin(w), path, "secret.delete", status=204)


def mutating(w: World) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in endpoints(w.srv.app) if e.method in MUTATING]


async def rows_for(w: World, request_id: str) -> list[Any]:
    async with w.srv.runtime.database().connect() as conn:
        found = await conn.execute(sa.select(audit).where(audit.c.request_id == request_id))
        return list(found.all())


async def test_the_exemption_list_is_minimal(world: World) -> None:
    routes = set(mutating(world))
    assert set(EXEMPT) - routes == set(), "an exempt route that the app does not have"
    assert set(EXEMPT) & set(_steps()) == set(), "a route both exempt and exercised"


async def test_every_mutating_route_leaves_an_audit_row(world: World) -> None:
    steps = _steps()
    missing = [r for r in mutating(world) if r not in EXEMPT and r not in steps]
    assert not missing, f"mutating routes with no audited call here: {missing}"
    wrong: list[str] = []
    for n, route in enumerate(r for r in mutating(world) if r not in EXEMPT):
        step = await steps[route](world)
        rid = f"audit-walk-{n}"
        r = await probe(
            step.client,
            route[0],
            step.path,
            json=step.body,
            headers={"X-Request-Id": rid},
        )
        if r.status != step.status:
            wrong.append(f"{route}: {r.status}, expected {step.status} ({r.body})")
            continue
        got = [(row.action, row.outcome) for row in await rows_for(world, rid)]
        if (step.action, "ok") not in got:
            wrong.append(f"{route}: audit rows {got}, expected {step.action}")
    assert not wrong, "\n".join(wrong)
    async with world.srv.runtime.database().connect() as conn:
        stmt = sa.select(audit.c.action).where(audit.c.target_id == NEW_ID)
        placeholders = (await conn.execute(stmt)).scalars().all()
    assert placeholders == [], "creates whose store did not take the audit row"


async def test_graphql_mutations_are_audited(world: World) -> None:
    query = 'mutation { startInstance(processId: "' + world.a.hello_id + '") { id } }'
    r = await probe(
        admin(world), "POST", "/graphql", json={"query": query}, headers={"X-Request-Id": "gql-1"}
    )
    assert r.status == 200, r.body
    assert not r.body.get("errors"), r.body
    iid = r.body["data"]["startInstance"]["id"]
    got = [(row.action, row.target_id) for row in await rows_for(world, "gql-1")]
    assert got == [("instance.start", iid)]
