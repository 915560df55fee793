"""Offloaded payloads over the real API: reads show the marker, the lazy route serves the
value to readers of the instance's workspace only, and retention deletes the blobs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.api.fixtures import LARGE_INPUT, WS_A, World, build_world, matrix_server, ok, probe

from cadenza.application.identity import Role

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    db = tmp_path_factory.mktemp("payloads") / "payloads.db"
    async with matrix_server(f"sqlite:///{db}") as srv:
        yield await build_world(srv)


def route(instance_id: str, sha256: str) -> str:
    return f"/api/v1/processes/instances/{instance_id}/payloads/{sha256}"


async def test_reads_show_the_marker_with_size_and_preview(world: World) -> None:
    viewer = world.members[Role.VIEWER]
    a = world.a
    detail = ok(await viewer.get(f"/api/v1/processes/instances/{a.running}"))
    marker = detail["inputs"]
    assert marker["$cadenza"] == "blob"
    assert marker["sha256"] == a.payload_sha
    assert marker["ref"] == f"{WS_A}/{a.running}/{a.payload_sha}"
    assert marker["size"] == len(json.dumps({"large": LARGE_INPUT}, separators=(",", ":")))
    assert marker["preview"].startswith('{"large":"team-a-large-input-')
    assert len(marker["preview"]) == 200
    events = ok(await viewer.get(f"/api/v1/processes/instances/{a.running}/events"))
    started = next(e for e in events if e["type"] == "InstanceStarted")
    assert started["data"]["inputs"]["sha256"] == a.payload_sha
    listed = ok(await viewer.get("/api/v1/processes/instances", params={"limit": "500"}))
    row = next(i for i in listed["items"] if i["id"] == a.running)
    assert row["inputs"]["$cadenza"] == "blob"


async def test_a_viewer_loads_the_whole_value(world: World) -> None:
    r = await probe(world.members[Role.VIEWER], "GET", route(world.a.running, world.a.payload_sha))
    assert r.status == 200, r.body
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.body == {"large": LARGE_INPUT}


async def test_a_hash_of_another_instance_or_workspace_is_not_found(world: World) -> None:
    a = world.a
    admin = world.members[Role.ADMIN]
    # A's own hash under another instance of A: the key is built from the instance
    assert (await probe(admin, "GET", route(a.completed, a.payload_sha))).status == 404
    # B's admin, in B, naming A's instance and hash
    assert (await probe(world.b_admin, "GET", route(a.running, a.payload_sha))).status == 404
    # a hash nobody stored, and one that is not a hash at all
    assert (await probe(admin, "GET", route(a.running, "0" * 64))).status == 404
    assert (await probe(admin, "GET", route(a.running, "../../x"))).status == 404
    assert (await probe(admin, "GET", route(a.running, "A" * 64))).status == 422
    anonymous = world.client(None, WS_A)
    assert (await probe(anonymous, "GET", route(a.running, a.payload_sha))).status == 401


async def test_the_blob_is_a_private_file_next_to_the_database(world: World) -> None:
    db_file = Path(world.srv.runtime.settings.database_url.split(":///", 1)[1])
    blob = Path(f"{db_file}.blobs") / WS_A / world.a.running / world.a.payload_sha
    assert blob.is_file()
    assert blob.stat().st_mode & 0o777 == 0o600
    assert json.loads(blob.read_bytes()) == {"large": LARGE_INPUT}


async def test_expand_payloads_returns_the_detail_with_whole_values(world: World) -> None:
    viewer = world.members[Role.VIEWER]
    path = f"/api/v1/processes/instances/{world.a.running}"
    expanded = ok(await viewer.get(path, params={"expand": "payloads"}))
    assert expanded["inputs"] == {"large": LARGE_INPUT}
    assert ok(await viewer.get(path))["inputs"]["$cadenza"] == "blob"  # not asked: the marker
    r = await probe(viewer, "GET", path, params={"expand": "everything"})
    assert r.status == 422
