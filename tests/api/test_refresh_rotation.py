"""Refresh token rotation (RFC 9700 §4.14.2) on every backend: each refresh hands out a new
refresh token and the old one stops working; a replaced token presented again ends the whole
session (audited, nothing secret in the row); the token replaced last is answered with the
same new pair during the grace window, so concurrent refreshes (tabs, processes, two API
instances on one database) rotate once and sign nobody out."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import sqlalchemy as sa
from tests.api.harness import ADMIN_PASSWORD, Client, Server, serve
from tests.api.test_admin_api import is_problem

from cadenza.infrastructure.sql.tables import audit, session_retired_tokens, sessions

ME = "/api/v1/me"
REFRESH = "/api/v1/auth/refresh"


async def sign_in(srv: Server) -> dict[str, Any]:
    r = await srv.anonymous.post(
        "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert r.status == 200, r.body
    tokens: dict[str, Any] = r.body
    return tokens


async def refreshed(anonymous: Client, token: str) -> dict[str, Any]:
    r = await anonymous.post(REFRESH, {"refresh_token": token})
    assert r.status == 200, r.body
    tokens: dict[str, Any] = r.body
    return tokens


async def session_row(srv: Server, session_id: str) -> Any:
    async with srv.runtime.database().connect() as conn:
        found = await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))
        return found.one()


def secret_hash(token: str) -> str:
    return hashlib.sha256(token.split(".", 1)[1].encode()).hexdigest()


async def test_each_refresh_rotates_and_a_replaced_token_ends_the_session(
    database_url: str,
) -> None:
    async with serve(database_url, refresh_grace_s=0, run_worker=False) as srv:
        t0 = await sign_in(srv)
        t1 = await refreshed(srv.anonymous, t0["refresh_token"])
        assert t1["refresh_token"] != t0["refresh_token"]
        assert t1["refresh_token"].split(".")[0] == t0["refresh_token"].split(".")[0]
        t2 = await refreshed(srv.anonymous, t1["refresh_token"])
        assert (await srv.anonymous.as_(t2["access_token"]).get(ME)).status == 200

        # the first token again: reuse (a thief or the victim, the server cannot tell which)
        stolen = await srv.anonymous.post(REFRESH, {"refresh_token": t0["refresh_token"]})
        assert is_problem(stolen, 401)
        assert "already used" in stolen.body["detail"]
        # the whole session ended: its current refresh token and every access token of it
        for access in (t0["access_token"], t1["access_token"], t2["access_token"]):
            assert is_problem(await srv.anonymous.as_(access).get(ME), 401)
        current = await srv.anonymous.post(REFRESH, {"refresh_token": t2["refresh_token"]})
        assert is_problem(current, 401)
        assert (await srv.admin.get(ME)).status == 200  # another session of the user stays

        session_id = t0["refresh_token"].split(".")[0]
        async with srv.runtime.database().connect() as conn:
            rows = (await conn.execute(sa.select(audit))).all()
        reuse = [r for r in rows if r.action == "auth.refresh_reuse"]
        assert len(reuse) == 1
        assert reuse[0].actor_type == "anonymous"
        assert reuse[0].target_type == "user"
        assert reuse[0].after["session_id"] == session_id
        text = str(rows)
        for pair in (t0, t1, t2):
            assert pair["refresh_token"].split(".", 1)[1] not in text
            assert secret_hash(pair["refresh_token"]) not in text


async def test_the_token_replaced_last_gets_the_same_pair_within_the_grace_window(
    database_url: str,
) -> None:
    async with serve(database_url, refresh_grace_s=60, run_worker=False) as srv:
        t0 = await sign_in(srv)
        t1 = await refreshed(srv.anonymous, t0["refresh_token"])
        late = await refreshed(srv.anonymous, t0["refresh_token"])  # a second tab, late
        assert late["refresh_token"] == t1["refresh_token"]
        assert (await srv.anonymous.as_(late["access_token"]).get(ME)).status == 200
        row = await session_row(srv, t0["refresh_token"].split(".")[0])
        assert row.token_hash == secret_hash(t1["refresh_token"])
        assert row.previous_hash == secret_hash(t0["refresh_token"])
        # a secret never stored: the sealed value is not the new secret nor its hash
        assert t1["refresh_token"].split(".", 1)[1] not in str(row)

        # a second rotation: t0 is now older than the token replaced last, so it is reuse
        t2 = await refreshed(srv.anonymous, t1["refresh_token"])
        again = await refreshed(srv.anonymous, t1["refresh_token"])  # t1 is in its grace now
        assert again["refresh_token"] == t2["refresh_token"]
        reused = await srv.anonymous.post(REFRESH, {"refresh_token": t0["refresh_token"]})
        assert is_problem(reused, 401)
        assert is_problem(await srv.anonymous.as_(t2["access_token"]).get(ME), 401)


async def test_a_wrong_secret_is_refused_without_ending_the_session(database_url: str) -> None:
    async with serve(database_url, run_worker=False) as srv:
        t0 = await sign_in(srv)
        session_id = t0["refresh_token"].split(".")[0]
        guess = await srv.anonymous.post(REFRESH, {"refresh_token": f"{session_id}.guessed"})
        assert is_problem(guess, 401)
        assert "already used" not in guess.body["detail"]
        # anyone who saw the session id (it is in every access token) cannot sign the user out
        assert (await srv.anonymous.as_(t0["access_token"]).get(ME)).status == 200
        assert (await refreshed(srv.anonymous, t0["refresh_token"]))["refresh_token"]


async def test_two_api_instances_refreshing_at_once_rotate_once(database_url: str) -> None:
    async with (
        serve(database_url, refresh_grace_s=60, run_worker=False) as one,
        serve(database_url, refresh_grace_s=60, run_worker=False) as two,
    ):
        t0 = await sign_in(one)
        body = {"refresh_token": t0["refresh_token"]}
        clients = [one.anonymous, two.anonymous] * 4
        replies = await asyncio.gather(*(c.post(REFRESH, body) for c in clients))
        assert [r.status for r in replies] == [200] * len(clients), [r.body for r in replies]
        tokens = {r.body["refresh_token"] for r in replies}
        assert len(tokens) == 1  # one rotation won; every other request got its result
        (t1,) = tokens
        session_id = t0["refresh_token"].split(".")[0]
        row = await session_row(one, session_id)
        assert row.token_hash == secret_hash(t1)
        async with one.runtime.database().connect() as conn:
            retired = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(session_retired_tokens)
                .where(session_retired_tokens.c.session_id == session_id)
            )
        assert retired == 1
        for r in replies:  # each access token of the answers works on either instance
            assert (await two.anonymous.as_(r.body["access_token"]).get(ME)).status == 200
        t2 = await refreshed(two.anonymous, t1)
        assert (await one.anonymous.as_(t2["access_token"]).get(ME)).status == 200
