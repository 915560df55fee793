"""Successful calls of each mutating route, for ``test_audit_coverage``: a builder per route
makes what the call needs (fresh targets for destructive ones) and says which audit action the
call must record."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.api.fixtures import (
    PASSWORD,
    WS_A,
    World,
    broken_document,
    ok,
    settled,
    start,
    waiting_approval,
)
from tests.api.harness import Client, document

from cadenza.application.identity import Role


@dataclass(frozen=True)
class Step:
    client: Client
    path: str
    action: str  # the audit action the call must record
    body: Any = None
    status: int = 200


Builder = Callable[[World], Awaitable[Step]]


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


def steps() -> dict[tuple[str, str], Builder]:
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
        ("PUT", "/api/v1/workspaces/{workspace_id}/retention"): lambda w: _ret(
            Step(
                admin(w),
                f"/api/v1/workspaces/{WS_A}/retention",
                "retention.set",
                {"finished_s": 86400, "failed_s": None},
            )
        ),
        ("DELETE", "/api/v1/workspaces/{workspace_id}/retention"): _retention_reset,
        ("PUT", "/api/v1/processes/instances/{instance_id}/legal-hold"): _hold,
        ("DELETE", "/api/v1/processes/instances/{instance_id}/legal-hold"): _hold_release,
        ("PUT", "/api/v1/config/providers/{provider}"): lambda w: _ret(
            Step(admin(w), f"{CONFIG}/providers/walk", "config.provider.put", OFFLINE)
        ),
        ("DELETE", "/api/v1/config/providers/{provider}"): _config_provider_delete,
        ("PUT", "/api/v1/config/mcp-servers/{server}"): lambda w: _ret(
            Step(system(w), f"{CONFIG}/mcp-servers/walk?scope=shared", "config.mcp_server.put", MCP)
        ),
        ("DELETE", "/api/v1/config/mcp-servers/{server}"): _config_mcp_delete,
        ("PUT", "/api/v1/config/settings/{setting}"): lambda w: _ret(
            Step(system(w), BREAKER, "config.setting.put", {"value": 7})
        ),
        ("DELETE", "/api/v1/config/settings/{setting}"): _config_setting_delete,
        ("PUT", "/api/v1/workspaces/{workspace_id}/quotas"): lambda w: _ret(
            Step(system(w), f"/api/v1/workspaces/{WS_A}/quotas", "quota.set", {"max_running": 50})
        ),
        ("PUT", "/api/v1/workspaces/{workspace_id}/redaction"): lambda w: _ret(
            Step(
                admin(w),
                f"/api/v1/workspaces/{WS_A}/redaction",
                "redaction.set",
                {"enabled": False, "custom": [{"name": "ticket", "pattern": "T#[0-9]+"}]},
            )
        ),
    }


CONFIG = "/api/v1/config"
OFFLINE = {"kind": "offline"}
MCP_SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py")
MCP = {"command": sys.executable, "args": [MCP_SCRIPT, "--transport", "stdio"]}
BREAKER = f"{CONFIG}/settings/mcp_breaker_failures"


async def _config_provider_delete(w: World) -> Step:
    path = f"{CONFIG}/providers/walk-gone"
    ok(await admin(w).request("PUT", path, OFFLINE))
    return Step(admin(w), path, "config.provider.delete", status=204)


async def _config_mcp_delete(w: World) -> Step:
    path = f"{CONFIG}/mcp-servers/walk-gone?scope=shared"
    ok(await system(w).request("PUT", path, MCP))
    return Step(system(w), path, "config.mcp_server.delete", status=204)


async def _config_setting_delete(w: World) -> Step:
    ok(await system(w).request("PUT", BREAKER, {"value": 6}))
    return Step(system(w), BREAKER, "config.setting.delete", status=204)


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


async def _retention_reset(w: World) -> Step:
    path = f"/api/v1/workspaces/{WS_A}/retention"
    ok(await admin(w).request("PUT", path, {"finished_s": 3600, "failed_s": None}))
    return Step(admin(w), path, "retention.reset", status=204)


async def _hold(w: World) -> Step:
    iid = await start(admin(w), w.a.process_id)
    path = f"/api/v1/processes/instances/{iid}/legal-hold"
    return Step(admin(w), path, "instance.legal_hold", {"reason": "audit walk"})


async def _hold_release(w: World) -> Step:
    iid = await start(admin(w), w.a.process_id)
    path = f"/api/v1/processes/instances/{iid}/legal-hold"
    ok(await admin(w).request("PUT", path, {"reason": "soon released"}))
    return Step(admin(w), path, "instance.legal_hold_release", status=204)
