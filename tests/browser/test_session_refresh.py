"""Two tabs of the console share one session while its tokens rotate: access tokens expire
(3 s here), both tabs call the API at the same moment, one refresh replaces the refresh token
and both keep working — with no server grace window at all, so only the console's own
coordination (one refresh at a time across tabs, tabs taking the tokens another stored) keeps
a replaced token from being presented. Presenting the first refresh token again afterwards
ends the session: both tabs land on the sign-in page."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Response
from tests.browser.console import PASSWORD, USERNAME, Console, start, stop

ROUNDS = 3


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[Console]:
    running = start(tmp_path, CADENZA_ACCESS_TOKEN_TTL_S="3", CADENZA_REFRESH_GRACE_S="0")
    try:
        yield running
    finally:
        stop(running)


async def stored(page: Page) -> dict[str, str]:
    raw = await page.evaluate("() => localStorage.getItem('cadenza.session')")
    state: dict[str, str] = json.loads(raw)["state"]
    return state


def status_of(console: Console, path: str, body: object | None, token: str | None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        console.url + path, data=data, method="POST" if data else "GET"
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def expired(console: Console, token: str) -> None:
    """Wait (polling, with a deadline) until the server refuses ``token`` as expired."""
    deadline = time.monotonic() + 30
    while status_of(console, "/api/v1/me", None, token) != 401:
        assert time.monotonic() < deadline, "the access token did not expire in 30 s"
        await asyncio.sleep(0.25)


async def visit(page: Page, where: str, seen: list[tuple[str, int]]) -> None:
    """Open a page of the console by its menu and wait for its list call to succeed."""
    path = {
        "instances": "/api/v1/processes/instances",
        "processes": "/api/v1/processes/definitions",
    }
    async with page.expect_response(
        lambda r: r.url.split("?")[0].endswith(path[where]) and r.status == 200
    ):
        await page.get_by_test_id(f"nav-{where}").click()
    await page.get_by_test_id(f"{where}-page").wait_for()
    assert not page.url.endswith("/login"), seen


async def test_two_tabs_share_a_rotating_session(browser: Browser, short_lived: Console) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    try:
        first = await context.new_page()
        first.set_default_timeout(20_000)
        await first.goto(short_lived.url + "/")
        await first.get_by_test_id("login-username").fill(USERNAME)
        await first.get_by_test_id("login-password").fill(PASSWORD)
        await first.get_by_test_id("login-submit").click()
        await first.get_by_test_id("processes-page").wait_for()
        second = await context.new_page()  # the same browser profile: signed in already
        second.set_default_timeout(20_000)
        await second.goto(short_lived.url + "/instances")
        await second.get_by_test_id("instances-page").wait_for()

        seen: list[tuple[str, int]] = []

        def note(r: Response) -> None:
            if "/api/v1/" in r.url:
                seen.append((r.url.split("?")[0].split("/api/v1", 1)[1], r.status))

        first.on("response", note)
        second.on("response", note)
        login = await stored(first)
        for n in range(ROUNDS):
            await expired(short_lived, (await stored(first))["accessToken"])
            # both tabs call the API at once with expired access tokens
            there = ("instances", "processes") if n % 2 == 0 else ("processes", "instances")
            await asyncio.gather(visit(first, there[0], seen), visit(second, there[1], seen))

        refreshes = [status for path, status in seen if path == "/auth/refresh"]
        assert refreshes, seen
        assert all(status == 200 for status in refreshes), seen
        assert (await stored(second))["refreshToken"] != login["refreshToken"]
        db = sqlite3.connect(short_lived.log.parent / "console.db")
        try:
            reuse = db.execute("SELECT count(*) FROM audit WHERE action = 'auth.refresh_reuse'")
            assert reuse.fetchone()[0] == 0
        finally:
            db.close()

        # the login's refresh token, replaced long ago, comes back: the session ends
        replay = {"refresh_token": login["refreshToken"]}
        assert status_of(short_lived, "/api/v1/auth/refresh", replay, None) == 401
        for page, where in ((first, "processes"), (second, "instances")):
            await page.get_by_test_id(f"nav-{where}").click()
            await page.get_by_test_id("login-username").wait_for()
    finally:
        await context.close()
