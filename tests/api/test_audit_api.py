"""``GET /api/v1/audit`` and its export: filters, the cursor, who may read which rows, failed
logins, and that no secret value or password ever reaches the audit table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from tests.api.fixtures import NO_LIMITS, PASSWORD, ok
from tests.api.harness import Client, Server, document, serve

from cadenza.infrastructure.sql.tables import audit

pytestmark = pytest.mark.asyncio(loop_scope="module")

CANARY_SECRET = "canary-secret-value-5e1d"  # a secret's value: never in an audit row
CANARY_PASSWORD = "canary-password-77ab0"  # a wrong password tried at login
CANARY_USER_PASSWORD = "canary-user-password-93c"  # a user's real password


@dataclass
class Team:
    srv: Server
    ws_a: str
    ws_b: str
    a_admin: Client
    a_editor: Client
    a_viewer: Client
    b_admin: Client
    a_admin_id: str


async def _user(srv: Server, ws: str, name: str, role: str, password: str = PASSWORD) -> str:
    body = {"username": name, "password": password}
    uid = str(ok(await srv.admin.post("/api/v1/users", body), 201)["id"])
    path = f"/api/v1/workspaces/{ws}/members/{uid}"
    ok(await srv.admin.as_(srv.admin.token, ws).request("PUT", path, {"role": role}))
    return uid


async def _login(srv: Server, name: str, ws: str, password: str = PASSWORD) -> Client:
    r = await srv.anonymous.post("/api/v1/auth/login", {"username": name, "password": password})
    return srv.anonymous.as_(ok(r)["access_token"], ws)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def team(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Team]:
    db = tmp_path_factory.mktemp("audit") / "audit.db"
    async with serve(f"sqlite:///{db}", **NO_LIMITS) as srv:
        ws_a = ok(await srv.admin.post("/api/v1/workspaces", {"name": "audit-a"}), 201)["id"]
        ws_b = ok(await srv.admin.post("/api/v1/workspaces", {"name": "audit-b"}), 201)["id"]
        a_admin_id = await _user(srv, ws_a, "a-boss", "admin", CANARY_USER_PASSWORD)
        await _user(srv, ws_a, "a-edit", "editor")
        await _user(srv, ws_a, "a-view", "viewer")
        await _user(srv, ws_b, "b-boss", "admin")
        a_admin = await _login(srv, "a-boss", ws_a, CANARY_USER_PASSWORD)
        team = Team(
            srv,
            ws_a,
            ws_b,
            a_admin,
            await _login(srv, "a-edit", ws_a),
            await _login(srv, "a-view", ws_a),
            await _login(srv, "b-boss", ws_b),
            a_admin_id,
        )
        for pid in ("audit-one", "audit-two", "audit-three"):
            body = {"document": document(pid), "publish": True}
            ok(await a_admin.post("/api/v1/processes/definitions", body), 201)
        body = {"document": document("b-only"), "publish": True}
        ok(await team.b_admin.post("/api/v1/processes/definitions", body), 201)
        path = f"/api/v1/workspaces/{ws_a}/secrets/CANARY"
        ok(await a_admin.request("PUT", path, {"value": CANARY_SECRET}))
        yield team


async def rows(c: Client, **params: str) -> list[dict[str, Any]]:
    body = ok(await c.get("/api/v1/audit", params={"limit": "500", **params}))
    found: list[dict[str, Any]] = body["items"]
    return found


async def table(srv: Server) -> list[dict[str, Any]]:
    async with srv.runtime.database().connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(sa.select(audit))).all()]


async def test_a_failed_login_is_recorded_without_the_password(team: Team) -> None:
    body = {"username": "a-boss", "password": CANARY_PASSWORD}
    r = await team.srv.anonymous.post(
        "/api/v1/auth/login", body, headers={"X-Request-Id": "failed-login-1"}
    )
    assert r.status == 401
    found = await rows(team.srv.admin, action="auth.login_failed")
    mine = [x for x in found if x["request_id"] == "failed-login-1"]
    assert [
        (x["actor_name"], x["target_id"], x["client_ip"], x["outcome"], x["after"]) for x in mine
    ] == [
        (
            "a-boss",
            team.a_admin_id,
            "127.0.0.1",
            "failed",
            {"reason": "wrong password"},
        )
    ]
    unknown = {"username": "nobody-here", "password": CANARY_PASSWORD}
    assert (await team.srv.anonymous.post("/api/v1/auth/login", unknown)).status == 401
    found = await rows(team.srv.admin, action="auth.login_failed", target_id="nobody-here")
    assert [(x["actor_name"], x["after"]) for x in found] == [
        ("nobody-here", {"reason": "no such user"})
    ]
    dumped = json.dumps(await table(team.srv), default=str)
    assert CANARY_PASSWORD not in dumped
    assert CANARY_USER_PASSWORD not in dumped


async def test_secret_values_never_reach_the_audit_table(team: Team) -> None:
    found = await rows(team.a_admin, action="secret.")
    assert [(x["action"], x["target_id"], x["workspace_id"]) for x in found] == [
        ("secret.put", "CANARY", team.ws_a)
    ]
    dumped = json.dumps(await table(team.srv), default=str)
    assert CANARY_SECRET not in dumped
    assert team.srv.admin.token
    assert team.srv.admin.token not in dumped


async def test_filters_select_by_action_prefix_actor_target_workspace_and_time(
    team: Team,
) -> None:
    sys = team.srv.admin
    published = await rows(sys, action="definition.publish", workspace_id=team.ws_a)
    assert sorted(x["target_id"] for x in published) == [
        "audit-one@1",
        "audit-three@1",
        "audit-two@1",
    ]
    assert {x["actor_id"] for x in published} == {team.a_admin_id}
    by_actor = await rows(sys, actor=team.a_admin_id, action="definition.")
    assert {x["action"] for x in by_actor} == {"definition.save", "definition.publish"}
    target = await rows(sys, target_type="definition_version", target_id="audit-two@1")
    assert [x["action"] for x in target] == ["definition.publish"]
    assert await rows(sys, action="definition.publish", workspace_id=team.ws_b) == [
        x for x in await rows(sys, action="definition.publish") if x["workspace_id"] == team.ws_b
    ]
    every = await rows(sys)
    ats = sorted(x["at"] for x in every)
    # a boundary between two rows, further from both than a timestamp's microsecond rounding
    gap = next(i for i in range(len(ats) // 2, len(ats)) if ats[i] - ats[i - 1] > 1e-4)
    middle = (ats[gap] + ats[gap - 1]) / 2
    iso = datetime.fromtimestamp(middle, UTC).isoformat()
    later, earlier = await rows(sys, since=iso), await rows(sys, until=iso)
    assert {x["id"] for x in later} == {x["id"] for x in every if x["at"] > middle}
    assert {x["id"] for x in earlier} == {x["id"] for x in every if x["at"] < middle}
    assert later
    assert earlier
    assert (await sys.get("/api/v1/audit", params={"since": str(int(middle))})).status == 422


async def test_the_cursor_walks_every_row_once_newest_first(team: Team) -> None:
    every = [x["id"] for x in await rows(team.srv.admin)]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = ok(await team.srv.admin.get("/api/v1/audit", params=params))
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert not cursor.isdigit()  # opaque, not the id
    assert seen == every == sorted(every, reverse=True)
    bad = await team.srv.admin.get("/api/v1/audit", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert bad.status == 422


async def test_export_streams_json_lines_with_the_same_filters(team: Team) -> None:
    r = await team.srv.admin.get("/api/v1/audit/export", params={"action": "definition."})
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.body.splitlines()]
    listed = await rows(team.srv.admin, action="definition.")
    assert lines == list(reversed(listed))  # oldest first
    assert all(x["action"].startswith("definition.") for x in lines)


async def test_a_workspace_admin_sees_only_their_workspace(team: Team) -> None:
    mine = await rows(team.a_admin)
    assert mine
    assert {x["workspace_id"] for x in mine} == {team.ws_a}
    assert await rows(team.a_admin, workspace_id=team.ws_b) == []
    theirs = await rows(team.b_admin)
    assert {x["workspace_id"] for x in theirs} == {team.ws_b}
    assert "b-only" in {x["target_id"] for x in theirs}
    r = await team.b_admin.get("/api/v1/audit/export")
    assert {json.loads(line)["workspace_id"] for line in r.body.splitlines()} == {team.ws_b}
    everything = {x["workspace_id"] for x in await rows(team.srv.admin)}
    assert {team.ws_a, team.ws_b, None} <= everything  # system rows (users, logins) too


@pytest.mark.parametrize("who", ["a_editor", "a_viewer"])
async def test_editors_and_viewers_may_not_read_the_audit_log(team: Team, who: str) -> None:
    c: Client = getattr(team, who)
    assert (await c.get("/api/v1/audit")).status == 403
    assert (await c.get("/api/v1/audit/export")).status == 403


async def test_a_refused_change_leaves_no_row(team: Team) -> None:
    before = len(await table(team.srv))
    taken = {"username": "a-boss", "password": PASSWORD}
    assert (await team.srv.admin.post("/api/v1/users", taken)).status == 409
    assert (
        await team.a_viewer.post("/api/v1/api-keys", {"name": "x", "role": "viewer"})
    ).status == 403
    assert len(await table(team.srv)) == before


async def test_rows_count_in_the_metrics(team: Team) -> None:
    text = ok(await team.srv.admin.get("/metrics"))
    assert 'cadenza_audit_rows_total{family="definition"}' in text
