"""Users, workspaces, members, API keys and settings over the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.api.fixtures import eventually
from tests.api.harness import Client, Reply, document, serve

from cadenza.interfaces.api.routes.admin import NO_MEMBER

PASSWORD = "a-long-enough-password"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def is_problem(r: Reply, status: int) -> bool:
    ctype = {k.lower(): v for k, v in r.headers.items()}.get("content-type")
    return (
        r.status == status
        and ctype == "application/problem+json"
        and r.body["status"] == status
        and bool(r.body["detail"])
    )


async def new_user(admin: Client, name: str, *, is_admin: bool = False) -> str:
    r = await admin.post(
        "/api/v1/users", {"username": name, "password": PASSWORD, "is_admin": is_admin}
    )
    assert r.status == 201, r.body
    user_id: str = r.body["id"]
    return user_id


async def new_workspace(admin: Client, name: str) -> str:
    r = await admin.post("/api/v1/workspaces", {"name": name})
    assert r.status == 201, r.body
    workspace_id: str = r.body["id"]
    return workspace_id


async def login(anonymous: Client, username: str, workspace: str) -> Client:
    """A client signed in as ``username``, acting in ``workspace``."""
    signed_in = await anonymous.login(username, PASSWORD)
    return signed_in.as_(signed_in.token, workspace)


async def key(c: Client, role: str, **extra: object) -> tuple[str, str]:
    """(key id, secret) of a new key in ``c``'s current workspace."""
    r = await c.post("/api/v1/api-keys", {"name": f"{role}-key", "role": role, **extra})
    assert r.status == 201, r.body
    return r.body["id"], r.body["secret"]


async def test_users_are_created_listed_changed_and_disabled(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        uid = await new_user(c, "ada")
        users = await c.get("/api/v1/users")
        assert [u["username"] for u in users.body] == ["ada", "admin"]
        assert "password" not in str(users.body)
        assert "hash" not in str(users.body)
        assert is_problem(
            await c.post("/api/v1/users", {"username": "ada", "password": PASSWORD}), 409
        )
        short = await c.post("/api/v1/users", {"username": "bob", "password": "short"})
        assert is_problem(short, 422)
        assert "at least 12" in short.body["detail"]

        ada = await srv.anonymous.login("ada", PASSWORD)
        assert (await ada.get("/api/v1/me")).status == 403  # no workspace yet
        await c.request("PUT", f"/api/v1/workspaces/default/members/{uid}", {"role": "viewer"})
        assert (await ada.get("/api/v1/me")).body["role"] == "viewer"

        new_password = "another-long-password"
        changed = await c.request("PATCH", f"/api/v1/users/{uid}", {"password": new_password})
        assert changed.status == 200
        assert (await srv.anonymous.login("ada", new_password)).token
        disabled = await c.request("PATCH", f"/api/v1/users/{uid}", {"disabled": True})
        assert disabled.body["disabled"] is True
        assert is_problem(await ada.get("/api/v1/me"), 401)  # its tokens stop working at once
        login = await srv.anonymous.post(
            "/api/v1/auth/login", {"username": "ada", "password": new_password}
        )
        assert is_problem(login, 401)

        me = (await c.get("/api/v1/me")).body["user"]["id"]
        assert is_problem(await c.request("PATCH", f"/api/v1/users/{me}", {"disabled": True}), 409)
        assert is_problem(await c.request("PATCH", "/api/v1/users/nobody", {"is_admin": True}), 404)


async def test_only_system_admins_manage_users_workspaces_and_settings(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        _, secret = await key(srv.admin, "admin")
        ws_admin = srv.admin.as_(secret)  # admin of the default workspace only
        for method, path, body in [
            ("GET", "/api/v1/users", None),
            ("POST", "/api/v1/users", {"username": "eve", "password": PASSWORD}),
            ("PATCH", "/api/v1/users/x", {"disabled": True}),
            ("POST", "/api/v1/workspaces", {"name": "mine"}),
            ("DELETE", "/api/v1/workspaces/default", None),
            ("GET", "/api/v1/settings", None),
        ]:
            r = await ws_admin.request(method, path, body)
            assert is_problem(r, 403), (method, path, r.body)
        settings = await srv.admin.get("/api/v1/settings")
        assert settings.status == 200
        assert settings.body["default_provider"] == "offline"
        assert "token_secret" not in settings.body
        assert "admin_password" not in settings.body


async def test_workspaces_members_and_isolation(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        team = await new_workspace(c, "team")
        other = await new_workspace(c, "other")
        assert team != "team"  # random ids: a deleted workspace's id is never reused
        assert is_problem(await c.post("/api/v1/workspaces", {"name": "team"}), 409)
        assert is_problem(await c.post("/api/v1/workspaces", {"name": "no spaces"}), 422)
        names = [w["name"] for w in (await c.get("/api/v1/workspaces")).body]
        assert names == ["default", "other", "team"]

        lead, dev = await new_user(c, "lead"), await new_user(c, "dev")
        put = await c.request("PUT", f"/api/v1/workspaces/{team}/members/{lead}", {"role": "admin"})
        assert put.body == {"user_id": lead, "username": "lead", "role": "admin"}
        assert is_problem(
            await c.request("PUT", f"/api/v1/workspaces/{team}/members/{dev}", {"role": "boss"}),
            422,
        )
        lead_c = await login(srv.anonymous, "lead", team)
        assert [w["id"] for w in (await lead_c.get("/api/v1/workspaces")).body] == [team]
        assert (await lead_c.get(f"/api/v1/workspaces/{team}")).body["name"] == "team"

        # The lead manages the team's members, by user id or username; adding a user who is
        # not a member yet takes a system admin (test_member_routes_do_not_reveal_usernames).
        await c.request("PUT", f"/api/v1/workspaces/{team}/members/{dev}", {"role": "viewer"})
        changed = await lead_c.request(
            "PUT", f"/api/v1/workspaces/{team}/members/dev", {"role": "editor"}
        )
        assert changed.status == 200
        assert changed.body["user_id"] == dev
        members = await lead_c.get(f"/api/v1/workspaces/{team}/members")
        assert members.body == [
            {"user_id": dev, "username": "dev", "role": "editor"},
            {"user_id": lead, "username": "lead", "role": "admin"},
        ]
        assert is_problem(
            await lead_c.request(
                "PUT", f"/api/v1/workspaces/{team}/members/{lead}", {"role": "viewer"}
            ),
            409,
        )
        assert is_problem(
            await lead_c.request(
                "PUT", f"/api/v1/workspaces/{team}/members/ghost", {"role": "viewer"}
            ),
            404,
        )

        # Another workspace, or one that does not exist, is not found: never forbidden.
        for path in [
            f"/api/v1/workspaces/{other}",
            f"/api/v1/workspaces/{other}/members",
            "/api/v1/workspaces/default/members",
            "/api/v1/workspaces/missing",
        ]:
            assert is_problem(await lead_c.get(path), 404), path
        sneak = await lead_c.request(
            "PUT", f"/api/v1/workspaces/{other}/members/{dev}", {"role": "admin"}
        )
        assert is_problem(sneak, 404)
        assert is_problem(
            await lead_c.request("DELETE", f"/api/v1/workspaces/{other}/members/{dev}"), 404
        )

        dev_c = await login(srv.anonymous, "dev", team)
        assert is_problem(await dev_c.get(f"/api/v1/workspaces/{team}/members"), 403)
        assert (await dev_c.get(f"/api/v1/workspaces/{team}")).status == 200

        removed = await lead_c.request("DELETE", f"/api/v1/workspaces/{team}/members/{dev}")
        assert removed.status == 204
        assert is_problem(await dev_c.get("/api/v1/me"), 403)  # no longer a member
        assert is_problem(
            await lead_c.request("DELETE", f"/api/v1/workspaces/{team}/members/{dev}"), 404
        )

        assert is_problem(await c.request("DELETE", "/api/v1/workspaces/default"), 409)
        assert (await c.request("DELETE", f"/api/v1/workspaces/{team}")).status == 202
        # the deletion job (woken by the request) removes it in the background
        await eventually(
            lambda: gone(c, f"/api/v1/workspaces/{team}/deletion"), "the workspace deleted"
        )
        assert is_problem(await c.get(f"/api/v1/workspaces/{team}"), 404)
        assert is_problem(await lead_c.get("/api/v1/me"), 403)
        assert is_problem(await c.request("DELETE", f"/api/v1/workspaces/{team}"), 404)


async def gone(c: Client, path: str) -> bool:
    return (await c.get(path)).status == 404


async def test_api_keys_show_the_secret_once_and_stop_working_when_revoked(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        key_id, secret = await key(c, "operator")
        assert secret.startswith("cdz_")
        listed = await c.get("/api/v1/api-keys")
        assert [k["id"] for k in listed.body] == [key_id]
        assert secret not in str(listed.body)
        assert "secret" not in listed.body[0]
        assert "key_hash" not in listed.body[0]

        operator = c.as_(secret)
        assert (await operator.get("/api/v1/agents")).status == 200
        assert is_problem(await operator.get("/api/v1/api-keys"), 403)
        assert is_problem(
            await operator.post("/api/v1/api-keys", {"name": "x", "role": "viewer"}), 403
        )
        assert (await c.get("/api/v1/api-keys")).body[0]["last_used_at"] is not None

        _, admin_secret = await key(c, "admin")
        ws_admin = c.as_(admin_secret)
        assert is_problem(
            await ws_admin.post("/api/v1/api-keys", {"name": "x", "role": "root"}), 422
        )
        assert is_problem(await ws_admin.request("DELETE", "/api/v1/api-keys/unknown"), 404)
        revoked = await ws_admin.request("DELETE", f"/api/v1/api-keys/{key_id}")
        assert revoked.status == 204
        assert (await c.get("/api/v1/api-keys")).body[0]["revoked"] is True
        rejected = await operator.get("/api/v1/agents")
        assert is_problem(rejected, 401)
        assert "revoked" in rejected.body["detail"]


async def test_an_expired_key_is_rejected(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        _, secret = await key(srv.admin, "viewer", ttl_s=0.5)
        viewer = srv.admin.as_(secret)
        assert (await viewer.get("/api/v1/agents")).status == 200
        await asyncio.sleep(0.7)
        rejected = await viewer.get("/api/v1/agents")
        assert is_problem(rejected, 401)
        assert "expired" in rejected.body["detail"]
        assert is_problem(
            await srv.admin.post("/api/v1/api-keys", {"name": "k", "role": "viewer", "ttl_s": 0}),
            422,
        )


async def test_keys_belong_to_their_workspace(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        other = await new_workspace(c, "other")
        in_other = c.as_(c.token, other)
        other_id, other_secret = await key(in_other, "admin")
        assert (await in_other.get("/api/v1/api-keys")).body[0]["workspace_id"] == other
        assert (await c.get("/api/v1/api-keys")).body == []
        assert is_problem(await c.request("DELETE", f"/api/v1/api-keys/{other_id}"), 404)

        other_admin = c.as_(other_secret)
        saved = await other_admin.post(
            "/api/v1/processes/definitions", {"document": document(), "publish": True}
        )
        assert saved.status == 201
        assert is_problem(await c.get("/api/v1/processes/definitions/hello"), 404)
        assert is_problem(await other_admin.get("/api/v1/workspaces/default"), 404)
        assert [w["id"] for w in (await other_admin.get("/api/v1/workspaces")).body] == [other]
        # A key cannot be used in another workspace.
        assert is_problem(await c.as_(other_secret, "default").get("/api/v1/agents"), 403)


async def test_member_routes_do_not_reveal_usernames(sqlite_url: str) -> None:
    """Security regression (issue 9, Low): a workspace admin used to learn whether any
    username exists from ``PUT /workspaces/{own}/members/{name}`` (200 vs 404)."""
    async with serve(sqlite_url) as srv:
        c = srv.admin
        team = await new_workspace(c, "team")
        lead, outsider = await new_user(c, "lead"), await new_user(c, "outsider")
        await c.request("PUT", f"/api/v1/workspaces/{team}/members/{lead}", {"role": "admin"})
        lead_c = await login(srv.anonymous, "lead", team)
        members = f"/api/v1/workspaces/{team}/members"
        before = (await lead_c.get(members)).body

        answers = []
        for ref in ("outsider", "ghost", outsider, "0" * 34):
            for method, body in (("PUT", {"role": "viewer"}), ("DELETE", None)):
                r = await lead_c.request(method, f"{members}/{ref}", body)
                answers.append((r.status, r.headers["Content-Type"], r.body))
        assert (
            answers
            == [
                (
                    404,
                    "application/problem+json",
                    {
                        "type": "about:blank",
                        "title": "Not found",
                        "status": 404,
                        "detail": NO_MEMBER,
                    },
                )
            ]
            * 8
        )
        assert (await lead_c.get(members)).body == before

        # a system admin adds users and is told when one does not exist
        added = await c.request("PUT", f"{members}/outsider", {"role": "viewer"})
        assert added.body == {"user_id": outsider, "username": "outsider", "role": "viewer"}
        ghost = await c.request("PUT", f"{members}/ghost", {"role": "viewer"})
        assert (ghost.status, ghost.body["detail"]) == (404, "no user 'ghost'")
        # once a member, the workspace admin manages them
        changed = await lead_c.request("PUT", f"{members}/outsider", {"role": "editor"})
        assert changed.body == {"user_id": outsider, "username": "outsider", "role": "editor"}
