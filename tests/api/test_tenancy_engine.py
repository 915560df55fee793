"""Tenancy inside the engine: a process of one workspace cannot start another's process as a
subprocess, and idempotency keys are per workspace."""

from __future__ import annotations

from pathlib import Path

from tests.api.harness import Client, document, serve

from cadenza.application.identity import Role
from cadenza.application.ports_api import Workspace
from cadenza.bootstrap import build_identity


async def _member_of_b(srv_runtime: object, anonymous: Client) -> Client:
    from cadenza.bootstrap import Runtime

    assert isinstance(srv_runtime, Runtime)
    identity = await build_identity(srv_runtime)
    await identity.store.add_workspace(Workspace("b", "b", 0.0))
    user = await identity.create_user("bob", "bob-password-123")
    await identity.store.set_member("b", user.id, Role.ADMIN.value)
    return await anonymous.login("bob", "bob-password-123")


async def test_a_subprocess_cannot_cross_workspaces(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'a.db'}") as srv:
        a = srv.admin
        await a.post("/api/v1/processes/definitions", {"document": document(), "publish": True})
        b = await _member_of_b(srv.runtime, srv.anonymous)
        parent = document(
            "parent",
            nodes=[{"id": "child", "type": "subprocess", "config": {"process": "hello"}}],
            outputs={},
        )
        saved = await b.post("/api/v1/processes/definitions", {"document": parent, "publish": True})
        assert saved.status == 201, saved.body
        started = await b.post("/api/v1/processes/instances", {"process_id": "parent"})
        assert started.status == 201
        done = await srv.runtime.engine.wait_finished(started.body["id"])
        assert done.status.value == "failed"
        assert "'hello'" in (done.error or "")
        # workspace A's own process is untouched and still runs for A
        mine = await a.post("/api/v1/processes/instances", {"process_id": "hello"})
        assert (await srv.runtime.engine.wait_finished(mine.body["id"])).status.value == (
            "completed"
        )


async def test_idempotency_keys_are_per_workspace(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'a.db'}") as srv:
        a = srv.admin
        b = await _member_of_b(srv.runtime, srv.anonymous)
        await a.post("/api/v1/processes/definitions", {"document": document(), "publish": True})
        await b.post(
            "/api/v1/processes/definitions", {"document": document("hello-b"), "publish": True}
        )
        body = {"process_id": "hello", "idempotency_key": "k1"}
        first = await a.post("/api/v1/processes/instances", body)
        again = await a.post(
            "/api/v1/processes/instances",
            {**body, "idempotency_key": None},
            headers={"Idempotency-Key": "k1"},
        )
        assert first.body["id"] == again.body["id"]
        other = await b.post(
            "/api/v1/processes/instances", {"process_id": "hello-b", "idempotency_key": "k1"}
        )
        assert other.status == 201
        assert other.body["id"] != first.body["id"]
