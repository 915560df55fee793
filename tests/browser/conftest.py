"""Browser tests: headless Debian Chromium driven by Playwright against a real ``cadenza serve``.

Needs the built console (``cd ui && npm ci && npm run build``) and ``/usr/bin/chromium``
(``apt-get install -y chromium``; ``playwright install`` cannot download here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright
from tests.browser.console import (
    CHROMIUM,
    DIST,
    PASSWORD,
    USERNAME,
    Console,
    start,
    stop,
    unavailable,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web console in headless Chromium")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")  # stopped when the browser tests end, not at session end
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not (DIST / "index.html").is_file():
        unavailable(f"the console is not built ({DIST}): run `cd ui && npm ci && npm run build`")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    running = start(tmp_path_factory.mktemp("console"))
    try:
        yield running
    finally:
        stop(running)


@pytest.fixture
async def browser(console: Console) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, console: Console) -> AsyncIterator[Page]:
    """A page signed in as the admin, in English, on the processes list."""
    context = await browser.new_context(viewport={"width": 1680, "height": 1000}, locale="en-US")
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.set_default_timeout(20_000)
    await opened.goto(console.url + "/")
    await opened.get_by_test_id("login-username").fill(USERNAME)
    await opened.get_by_test_id("login-password").fill(PASSWORD)
    await opened.get_by_test_id("login-submit").click()
    await opened.get_by_test_id("processes-page").wait_for()
    try:
        yield opened
    finally:
        await context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"
