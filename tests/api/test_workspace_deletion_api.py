"""Deleting a workspace over the real API (docs/workspaces.md): 202 and a progress URL, nothing
new starts in it meanwhile (409; its keys 401), its running instances are cancelled, every row
it owned is gone at the end and the other workspace is untouched; both audit rows; a legal
hold or the default workspace refuse the request. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from tests.api.fixtures import (
    NO_LIMITS,
    WS_A,
    WS_B,
    World,
    build_world,
    eventually,
    module_database_url,
    ok,
    settled,
    start,
)
from tests.api.harness import Client, serve
from tests.pg import BACKENDS

from cadenza.application.identity import Role
from cadenza.application.payload_blobs import workspace_prefix
from cadenza.infrastructure.secrets_crypto import new_key
from cadenza.infrastructure.sql.retention import instance_tables
from cadenza.infrastructure.sql.tables import instances, metadata

pytestmark = pytest.mark.asyncio(loop_scope="module")
DELETE = f"/api/v1/workspaces/{WS_A}"
PROGRESS = f"/api/v1/workspaces/{WS_A}/deletion"


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    url = module_database_url(request, tmp_path_factory, "wsdelete")
    blobs = str(tmp_path_factory.mktemp("wsdelete-blobs"))  # offloaded inputs on every backend
    async with serve(url, secrets_key=new_key(), blob_dir=blobs, **NO_LIMITS) as srv:
        yield await build_world(srv)


def system(world: World, workspace: str = WS_A) -> Client:
    return world.srv.admin.as_(world.srv.admin.token, workspace)


async def rows_of(world: World, workspace: str, instance_ids: list[str]) -> dict[str, int]:
    """Rows of ``workspace`` in every table with a ``workspace_id`` column (the audit log
    aside) and rows of ``instance_ids`` in every table of an instance."""
    out: dict[str, int] = {}
    async with world.srv.runtime.database().connect() as conn:
        for t in metadata.sorted_tables:
            if "workspace_id" in t.c and t.name != "audit":
                where = t.c.workspace_id == workspace
            elif t in instance_tables():
                where = t.c.instance_id.in_(instance_ids)
            else:
                continue
            count = sa.select(sa.func.count()).select_from(t).where(where)
            out[t.name] = int(await conn.scalar(count) or 0)
    return out


async def test_the_default_workspace_cannot_be_deleted(world: World) -> None:
    r = await world.srv.admin.request("DELETE", "/api/v1/workspaces/default")
    assert r.status == 409, r.body


async def test_only_system_admins_delete_and_admins_see_what_would_go(world: World) -> None:
    admin = world.members[Role.ADMIN]
    assert (await admin.request("DELETE", DELETE)).status == 403
    assert (await world.members[Role.EDITOR].get(PROGRESS)).status == 403
    assert (await world.b_admin.get(PROGRESS)).status == 404
    view = ok(await admin.get(PROGRESS))
    assert view["state"] == "active"
    assert view["deleted"] == {}
    assert view["remaining"]["instances"] >= 4
    assert view["remaining"]["definitions"] >= 4


async def test_a_legal_hold_refuses_the_deletion_and_is_listed(world: World) -> None:
    admin = world.members[Role.ADMIN]
    hold = f"/api/v1/processes/instances/{world.a.completed}/legal-hold"
    ok(await admin.request("PUT", hold, {"reason": "case 7"}))
    r = await world.srv.admin.request("DELETE", DELETE)
    assert r.status == 409, r.body
    assert world.a.completed in str(r.body)
    assert (await admin.request("DELETE", hold)).status == 204


async def test_the_workspace_and_everything_it_owned_goes_and_b_stays(world: World) -> None:
    srv, a = world.srv, world.a
    ok(await system(world).request("PUT", f"/api/v1/workspaces/{WS_A}/quotas", {"max_running": 50}))
    ok(
        await world.members[Role.ADMIN].request(
            "PUT", f"{DELETE}/retention", {"finished_s": 864000}
        )
    )
    async with srv.runtime.database().connect() as conn:
        mine = sa.select(instances.c.id).where(instances.c.workspace_id == WS_A)
        a_instances = [str(i) for i in (await conn.execute(mine)).scalars()]
    before = await rows_of(world, WS_A, a_instances)
    assert before["instances"] >= 4
    assert before["agents"] == 1
    assert before["api_keys"] >= 1
    b_before = await rows_of(world, WS_B, [])
    assert await blob_prefixes(world, WS_A)  # A's running instance has an offloaded input

    r = await srv.admin.request("DELETE", DELETE)
    body = ok(r, 202)
    assert body["state"] == "deleting"
    assert body["status_url"] == PROGRESS
    assert r.headers["Location"] == PROGRESS
    assert body["requested_by"].startswith("user:")
    assert body["rows_left"] == sum(body["remaining"].values())
    assert ok(await srv.admin.request("DELETE", DELETE), 202)["state"] == "deleting"

    # nothing new in it from now on: members get 409, its keys are revoked, admins too
    operator = world.members[Role.OPERATOR]
    refused = await operator.post("/api/v1/processes/instances", {"process_id": a.hello_id})
    assert refused.status == 409, refused.body
    key = world.client(a.key_secret)
    assert (await key.post("/api/v1/processes/instances", {"process_id": a.hello_id})).status == 401
    made = await system(world).post("/api/v1/api-keys", {"name": "late", "role": "viewer"})
    assert made.status == 409, made.body
    member = await srv.admin.request(
        "PUT", f"{DELETE}/members/{world.b_admin_id}", {"role": "viewer"}
    )
    assert member.status == 409, member.body
    assert (await system(world).request("PUT", f"{DELETE}/quotas", {})).status == 409
    assert (await operator.get("/api/v1/processes/instances")).status == 200  # reads still work
    for reader in (world.members[Role.ADMIN], system(world)):  # acting inside the workspace
        progress = await reader.get(PROGRESS)
        assert progress.status in (200, 404), progress.body  # 404: already done
        if progress.status == 200:
            assert progress.body["state"] == "deleting"

    async def gone() -> bool:
        r = await srv.admin.get(PROGRESS)
        assert r.status in (200, 404), r.body
        return r.status == 404

    await eventually(gone, "the deletion job to finish", timeout_s=30)
    assert (await srv.admin.get(DELETE)).status == 404
    assert set((await rows_of(world, WS_A, a_instances)).values()) == {0}
    assert await rows_of(world, WS_B, []) == b_before
    assert await blob_prefixes(world, WS_A) == []
    b_run = await start(world.b_admin, world.b_process)  # B works as before
    await settled(world.b_admin, b_run, "completed")

    audit = await audit_rows(world)
    requested = [e for e in audit if e["action"] == "workspace.delete"]
    assert [e["before"] for e in requested] == [{"name": WS_A}]  # the repeat is not a change
    done = [e for e in audit if e["action"] == "workspace.deleted"]
    assert len(done) == 1
    assert done[0]["actor_type"] == "system"
    deleted = done[0]["after"]["deleted"]
    assert deleted["instances"] == before["instances"]
    assert deleted["agents"] == 1
    assert deleted["definitions"] == before["definitions"]
    metrics = ok(await srv.admin.get("/metrics"))
    instances_metric = 'cadenza_workspace_deletion_deleted_total{kind="instances"}'
    assert f"{instances_metric} {float(before['instances'])}" in metrics
    assert "cadenza_workspaces_deleted_total 1.0" in metrics


async def blob_prefixes(world: World, workspace: str) -> list[str]:
    blobs = world.srv.runtime.blob_store()
    assert blobs is not None
    found = await blobs.instances("", 1000)
    return [prefix for prefix, _ in found if prefix.startswith(workspace_prefix(workspace))]


async def audit_rows(world: World) -> list[dict[str, Any]]:
    params = {"limit": "500", "target_type": "workspace", "target_id": WS_A}
    body = ok(await world.srv.admin.get("/api/v1/audit", params=params))
    found: list[dict[str, Any]] = body["items"]
    return found
