"""The retention routes over the real API: a workspace's policy (its admins and system admins),
legal holds on instances (set and cleared by admins, read by readers), their problems as
problem+json, and that the job keeps a held instance and deletes the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.api.fixtures import WS_A, World, build_world, matrix_server, ok, settled, start
from tests.api.harness import Client, Server, document, serve

from cadenza.application.identity import Role
from cadenza.application.retention_job import RetentionJob, RetentionSettings
from cadenza.domain.retention import RetentionPolicy

pytestmark = pytest.mark.asyncio(loop_scope="module")
POLICY = f"/api/v1/workspaces/{WS_A}/retention"
DAY = 86_400.0


def hold_path(instance_id: str) -> str:
    return f"/api/v1/processes/instances/{instance_id}/legal-hold"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    db = tmp_path_factory.mktemp("retention") / "retention.db"
    async with matrix_server(f"sqlite:///{db}") as srv:
        yield await build_world(srv)


def system_admin(world: World) -> Client:
    return world.srv.admin.as_(world.srv.admin.token, WS_A)


# ---- the policy ------------------------------------------------------------------------------
async def test_an_admin_sets_reads_and_drops_the_workspace_policy(world: World) -> None:
    admin = world.members[Role.ADMIN]
    assert ok(await admin.get(POLICY)) == {
        "workspace_id": WS_A,
        "finished_s": None,
        "failed_s": None,
        "source": "default",
        "updated_at": None,
        "updated_by": None,
    }
    body = {"finished_s": 30 * DAY, "failed_s": 90 * DAY}
    put = ok(await admin.request("PUT", POLICY, body))
    assert {k: put[k] for k in ("finished_s", "failed_s", "source")} == {
        **body,
        "source": "workspace",
    }
    assert put["updated_by"] == f"user:{world.a.user_id}"
    assert ok(await admin.get(POLICY)) == put
    assert (await admin.request("DELETE", POLICY)).status == 204
    assert ok(await admin.get(POLICY))["source"] == "default"


@pytest.mark.parametrize("role", [*Role, None], ids=[*(r.value for r in Role), "system-admin"])
async def test_only_workspace_and_system_admins_see_and_change_the_policy(
    world: World, role: Role | None
) -> None:
    caller = world.members[role] if role else system_admin(world)
    want = 200 if role in (Role.ADMIN, None) else 403
    assert (await caller.get(POLICY)).status == want
    put = await caller.request("PUT", POLICY, {"finished_s": 7 * DAY})
    assert put.status == want, put.body
    delete = await caller.request("DELETE", POLICY)
    assert delete.status == (204 if want == 200 else 403)


async def test_another_workspace_policy_is_not_found(world: World) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = await world.b_admin.request(method, POLICY, {} if method == "PUT" else None)
        assert r.status == 404, (method, r.body)
    missing = await system_admin(world).get("/api/v1/workspaces/no-such-space/retention")
    assert missing.status == 404


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"finished_s": 7 * DAY, "failed_s": DAY}, "at least finished_s"),
        ({"failed_s": DAY}, "at least finished_s"),
        ({"finished_s": 10}, "greater than or equal to 60"),
        ({"finished_s": DAY, "kept": True}, "Extra inputs are not permitted"),
    ],
)
async def test_an_invalid_policy_is_a_problem(world: World, body: object, says: str) -> None:
    r = await world.members[Role.ADMIN].request("PUT", POLICY, body)
    assert (r.status, r.headers["Content-Type"]) == (422, "application/problem+json")
    assert says in str(r.body), r.body


# ---- legal holds -----------------------------------------------------------------------------
async def test_an_admin_sets_and_releases_a_legal_hold_that_readers_see(world: World) -> None:
    admin, viewer = world.members[Role.ADMIN], world.members[Role.VIEWER]
    iid = world.a.completed
    assert ok(await viewer.get(hold_path(iid))) == {
        "instance_id": iid,
        "held": False,
        "reason": None,
        "set_by": None,
        "set_at": None,
    }
    held = ok(await admin.request("PUT", hold_path(iid), {"reason": "case 42"}))
    assert (held["held"], held["reason"], held["set_by"]) == (
        True,
        "case 42",
        f"user:{world.a.user_id}",
    )
    assert ok(await viewer.get(hold_path(iid))) == held
    assert (await admin.request("DELETE", hold_path(iid))).status == 204
    assert ok(await viewer.get(hold_path(iid)))["held"] is False


async def test_the_workspace_holds_are_listed_for_its_members_only(world: World) -> None:
    admin, viewer = world.members[Role.ADMIN], world.members[Role.VIEWER]
    holds = f"/api/v1/workspaces/{WS_A}/legal-holds"
    iid = world.a.failed
    assert ok(await admin.request("PUT", hold_path(iid), {"reason": "audit 2026"}))["held"]
    try:
        listed = ok(await viewer.get(holds))
        assert [(h["instance_id"], h["reason"], h["held"]) for h in listed] == [
            (iid, "audit 2026", True)
        ]
        assert listed[0]["set_by"] == f"user:{world.a.user_id}"
        foreign = await world.b_admin.get(holds)
        assert (foreign.status, foreign.headers["Content-Type"]) == (
            404,
            "application/problem+json",
        )
        assert ok(await system_admin(world).get(holds)) == listed
    finally:
        assert (await admin.request("DELETE", hold_path(iid))).status == 204
    assert ok(await viewer.get(holds)) == []


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.EDITOR])
async def test_only_admins_set_or_release_a_hold(world: World, role: Role) -> None:
    caller = world.members[role]
    for method in ("PUT", "DELETE"):
        r = await caller.request(method, hold_path(world.a.failed), {} if method == "PUT" else None)
        assert r.status == 403, (method, r.body)


async def test_a_hold_on_an_unknown_or_foreign_instance_is_not_found(world: World) -> None:
    admin = world.members[Role.ADMIN]
    for method in ("GET", "PUT", "DELETE"):
        r = await admin.request(method, hold_path("no-such-instance"), None)
        assert (r.status, r.headers["Content-Type"]) == (404, "application/problem+json")
        foreign = await world.b_admin.request(method, hold_path(world.a.running), None)
        assert foreign.status == 404, (method, foreign.body)


# ---- with the job ----------------------------------------------------------------------------
class Later:
    """A clock two days ahead of the real one."""

    def __init__(self, srv: Server) -> None:
        self._clock = srv.runtime.engine.clock

    def now(self) -> float:
        return self._clock.now() + 2 * DAY


async def test_the_job_keeps_a_held_instance_and_deletes_the_other(
    tmp_path: Path,
) -> None:
    async with serve(f"sqlite:///{tmp_path}/c.db") as srv:
        admin = srv.admin.as_(srv.admin.token, "default")
        ok(
            await admin.post(
                "/api/v1/processes/definitions", {"document": document(), "publish": True}
            ),
            201,
        )
        kept, gone = await start(admin, "hello"), await start(admin, "hello")
        for iid in (kept, gone):
            await settled(admin, iid, "completed")
        ok(await admin.request("PUT", hold_path(kept), {"reason": "audit"}))
        ok(await admin.request("PUT", "/api/v1/workspaces/default/retention", {"finished_s": DAY}))
        parts = srv.runtime.retention
        assert parts is not None
        settings = RetentionSettings(RetentionPolicy(), batch=10)
        run = await RetentionJob(parts.service.store, Later(srv), settings).run_once()
        assert run.instances == 1
        assert (await admin.get(f"/api/v1/processes/instances/{gone}")).status == 404
        assert ok(await admin.get(f"/api/v1/processes/instances/{kept}"))["status"] == "completed"
        assert ok(await admin.get(hold_path(kept)))["held"] is True
