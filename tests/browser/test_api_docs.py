"""The API docs page (/docs) renders with no network but the server: every request to
another origin is blocked and recorded, and the page must not make one, nor break its own
Content-Security-Policy."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Browser, ConsoleMessage, Request, Route, expect
from tests.browser.console import Console, shot


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def test_docs_render_the_operations_with_every_other_host_blocked(
    browser: Browser, console: Console
) -> None:
    server = origin(console.url)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    elsewhere: list[str] = []  # requests to any other origin: blocked, and a failure
    loaded: list[str] = []
    violations: list[str] = []
    errors: list[str] = []

    async def gate(route: Route, request: Request) -> None:
        if origin(request.url) == server:
            loaded.append(urlsplit(request.url).path)
            await route.continue_()
        else:
            elsewhere.append(request.url)
            await route.abort("blockedbyclient")

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    await context.route("**/*", gate)
    page = await context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(20_000)
    try:
        reply = await page.goto(console.url + "/docs")
        assert reply is not None
        assert reply.status == 200
        operations = page.locator(".opblock-summary-path")
        await expect(
            operations.filter(has_text="/api/v1/processes/instances").first
        ).to_be_visible()
        assert await operations.count() > 50
        # one operation opens (and its schema renders) without leaving the server either
        await page.locator(".opblock-summary-path[data-path='/api/v1/me']").first.click()
        await expect(page.locator(".opblock.is-open .responses-wrapper").first).to_be_visible()
        await shot(page, "api-docs")
    finally:
        await context.close()
    assert elsewhere == []
    assert violations == []
    assert errors == []
    assert {"/docs", "/docs/swagger-ui-bundle.js", "/docs/init.js", "/openapi.json"} <= set(loaded)
