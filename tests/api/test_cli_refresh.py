"""The CLI's client under refresh token rotation: two ``cadenza`` commands sharing the saved
credentials each refresh with the newest saved token, so neither presents a replaced one (which
would end the session), even with no grace window at all."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from tests.api.harness import ADMIN_PASSWORD, serve

from cadenza.entrypoints.cli_client import ApiClient, credentials_path
from cadenza.infrastructure.sql.tables import audit

ME = "/api/v1/me"


async def test_two_commands_sharing_saved_tokens_keep_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CADENZA_API_KEY", raising=False)
    async with (
        serve(f"sqlite:///{tmp_path / 'api.db'}", refresh_grace_s=0, run_worker=False) as srv,
        aiohttp.ClientSession() as http,
    ):
        await ApiClient.configured(http, srv.base, None).login("admin", ADMIN_PASSWORD)
        first = ApiClient.configured(http, srv.base, None)
        second = ApiClient.configured(http, srv.base, None)  # both read the same saved pair
        login_refresh = first.refresh_token

        first.access_token = "expired"  # its next call refreshes (and rotates)
        assert (await first.call("GET", ME))["user"]["username"] == "admin"
        assert first.refresh_token != login_refresh
        assert credentials_path().read_text().count(str(first.refresh_token)) == 1

        second.access_token = "expired"  # holds the login's refresh token, now replaced
        assert (await second.call("GET", ME))["user"]["username"] == "admin"
        first.access_token = "expired"  # and the first one, whose token the second replaced
        assert (await first.call("GET", ME))["user"]["username"] == "admin"

        async with srv.runtime.database().connect() as conn:
            actions = (await conn.scalars(sa.select(audit.c.action))).all()
        assert "auth.refresh_reuse" not in actions
