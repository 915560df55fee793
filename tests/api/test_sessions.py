"""Security regressions of issue 9: API keys bounded by their creator's current rights,
revocable sessions (sign-out, sign-out everywhere, admins, disabling) and token responses
that no cache keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.api.harness import ADMIN_PASSWORD, Client, serve
from tests.api.test_admin_api import PASSWORD, is_problem, key, login, new_user

from cadenza.application.access import MAX_KEY_CHAIN
from cadenza.infrastructure.sql.tables import sessions

ME = "/api/v1/me"
KEYS = "/api/v1/api-keys"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def member(admin: Client, name: str, role: str = "admin") -> tuple[str, Client]:
    """A new user with ``role`` in the default workspace, signed in."""
    user_id = await new_user(admin, name)
    r = await admin.request("PUT", f"/api/v1/workspaces/default/members/{user_id}", {"role": role})
    assert r.status == 200, r.body
    return user_id, await login(admin.as_(None), name, "default")


async def refresh(anonymous: Client, token: str) -> int:
    r = await anonymous.post("/api/v1/auth/refresh", {"refresh_token": token})
    return r.status


async def test_a_disabled_users_admin_key_is_refused_and_mints_nothing(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        user_id, ada = await member(srv.admin, "ada")
        _, secret = await key(ada, "admin")
        ada_key = srv.anonymous.as_(secret)
        assert (await ada_key.get(KEYS)).status == 200
        r = await srv.admin.request("PATCH", f"/api/v1/users/{user_id}", {"disabled": True})
        assert r.status == 200, r.body
        assert is_problem(await ada_key.get(KEYS), 401)
        minted = await ada_key.post(KEYS, {"name": "backdoor", "role": "admin"})
        assert is_problem(minted, 401)
        assert "disabled" in minted.body["detail"]


async def test_removing_a_membership_cuts_the_members_keys_and_tokens(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        user_id, bob = await member(srv.admin, "bob")
        _, secret = await key(bob, "editor")
        bob_key = srv.anonymous.as_(secret)
        assert (await bob_key.get("/api/v1/processes/definitions")).status == 200
        gone = await srv.admin.request("DELETE", f"/api/v1/workspaces/default/members/{user_id}")
        assert gone.status == 204
        assert is_problem(await bob_key.get("/api/v1/processes/definitions"), 401)
        assert is_problem(await bob.get("/api/v1/processes/definitions"), 403)


async def test_a_key_acts_with_the_lesser_of_its_role_and_its_creators(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        user_id, cy = await member(srv.admin, "cy")
        _, secret = await key(cy, "admin")
        cy_key = srv.anonymous.as_(secret)
        assert (await cy_key.get(ME)).body["role"] == "admin"
        lowered = await srv.admin.request(
            "PUT", f"/api/v1/workspaces/default/members/{user_id}", {"role": "viewer"}
        )
        assert lowered.status == 200
        me = (await cy_key.get(ME)).body
        assert (me["role"], me["permissions"]) == ("viewer", ["read"])
        assert is_problem(await cy_key.post(KEYS, {"name": "k", "role": "viewer"}), 403)


async def test_keys_made_by_a_revoked_key_stop_with_it(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        parent_id, parent_secret = await key(srv.admin, "admin")
        parent = srv.anonymous.as_(parent_secret)
        _, child_secret = await key(parent, "operator")
        child = srv.anonymous.as_(child_secret)
        assert (await child.get(ME)).body["role"] == "operator"
        assert (await srv.admin.request("DELETE", f"{KEYS}/{parent_id}")).status == 204
        assert is_problem(await child.get(ME), 401)


async def test_logout_ends_the_session_and_only_it(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await member(srv.admin, "dee")
        first = await srv.anonymous.post(
            "/api/v1/auth/login", {"username": "dee", "password": PASSWORD}
        )
        second = await srv.anonymous.post(
            "/api/v1/auth/login", {"username": "dee", "password": PASSWORD}
        )
        one = srv.anonymous.as_(first.body["access_token"])
        two = srv.anonymous.as_(second.body["access_token"])
        assert (await one.post("/api/v1/auth/logout")).status == 204
        assert is_problem(await one.get(ME), 401)
        assert await refresh(srv.anonymous, first.body["refresh_token"]) == 401
        assert (await two.get(ME)).status == 200
        assert await refresh(srv.anonymous, second.body["refresh_token"]) == 200


async def test_logout_all_ends_every_session_of_the_user(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await member(srv.admin, "eve")
        pairs = [
            (await srv.anonymous.post("/api/v1/auth/login", {"username": "eve", "password": p}))
            for p in (PASSWORD, PASSWORD)
        ]
        eve = srv.anonymous.as_(pairs[0].body["access_token"])
        assert (await eve.post("/api/v1/auth/logout-all")).status == 204
        for pair in pairs:
            assert is_problem(await srv.anonymous.as_(pair.body["access_token"]).get(ME), 401)
            assert await refresh(srv.anonymous, pair.body["refresh_token"]) == 401
        assert (await srv.admin.get(ME)).status == 200  # another user's session stays


async def test_admins_revoke_a_users_sessions_and_only_admins(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        user_id, fay = await member(srv.admin, "fay")
        assert is_problem(await fay.request("DELETE", f"/api/v1/users/{user_id}/sessions"), 403)
        assert (await fay.get(ME)).status == 200
        r = await srv.admin.request("DELETE", f"/api/v1/users/{user_id}/sessions")
        assert r.status == 204
        assert is_problem(await fay.get(ME), 401)
        missing = await srv.admin.request("DELETE", "/api/v1/users/nobody/sessions")
        assert is_problem(missing, 404)


async def test_disabling_a_user_revokes_their_sessions_for_good(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        user_id, gus = await member(srv.admin, "gus")
        pair = await srv.anonymous.post(
            "/api/v1/auth/login", {"username": "gus", "password": PASSWORD}
        )
        users = f"/api/v1/users/{user_id}"
        assert (await srv.admin.request("PATCH", users, {"disabled": True})).status == 200
        assert (await srv.admin.request("PATCH", users, {"disabled": False})).status == 200
        # enabled again: the old sessions stay ended, a new sign-in works
        assert is_problem(await gus.get(ME), 401)
        assert await refresh(srv.anonymous, pair.body["refresh_token"]) == 401
        again = await login(srv.anonymous, "gus", "default")
        assert (await again.get(ME)).status == 200


async def test_a_new_password_ends_the_users_sessions(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        user_id, hal = await member(srv.admin, "hal")
        body = {"password": "another-long-password"}
        assert (await srv.admin.request("PATCH", f"/api/v1/users/{user_id}", body)).status == 200
        assert is_problem(await hal.get(ME), 401)


async def test_refresh_tokens_are_stored_hashed(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        pair = await srv.anonymous.post(
            "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
        )
        token = pair.body["refresh_token"]
        async with srv.runtime.database().connect() as conn:
            rows = (await conn.execute(sa.select(sessions))).all()
        assert token not in str(rows)
        assert token.split(".", 1)[1] not in str(rows)
        assert len(rows) == 2  # the harness's sign-in and this one


async def test_token_responses_say_no_store(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        login_r = await srv.anonymous.post(
            "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
        )
        refresh_r = await srv.anonymous.post(
            "/api/v1/auth/refresh", {"refresh_token": login_r.body["refresh_token"]}
        )
        key_r = await srv.admin.post(KEYS, {"name": "k", "role": "viewer"})
        for r in (login_r, refresh_r, key_r):
            assert r.status in (200, 201), r.body
            assert r.headers["Cache-Control"] == "no-store"
            assert r.headers["Pragma"] == "no-cache"


async def test_api_keys_cannot_sign_out(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        _, secret = await key(srv.admin, "admin")
        r = await srv.anonymous.as_(secret).post("/api/v1/auth/logout")
        assert is_problem(r, 422)
        assert "DELETE /api/v1/api-keys" in r.body["detail"]


async def test_keys_made_by_keys_nest_at_most_eight_deep(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        maker = srv.admin
        for _ in range(MAX_KEY_CHAIN):
            _, secret = await key(maker, "admin")
            maker = srv.anonymous.as_(secret)
        assert (await maker.get(ME)).body["role"] == "admin"  # the eighth key in the chain
        r = await maker.post(KEYS, {"name": "ninth", "role": "viewer"})
        assert is_problem(r, 403)
        assert f"at most {MAX_KEY_CHAIN} deep" in r.body["detail"]
