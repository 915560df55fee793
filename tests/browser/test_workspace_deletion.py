"""Deleting a workspace from the console (System → Workspaces): the typed-name confirmation,
the refusal while an instance is under a legal hold (the held instance listed), then the
progress (the console's polls held back by the test so the view can be looked at) until the
job removed everything and the workspace left the switcher."""

from __future__ import annotations

import asyncio

from playwright.async_api import Page, Route, expect
from tests.browser.console import Console, shot
from tests.browser.test_operations_admin import publish, quick, waiting


async def switcher_options(page: Page) -> list[str]:
    """The workspaces the header's switcher offers (its dropdown opened and closed again)."""
    await page.get_by_test_id("workspace-select").click()
    options = page.locator(".ant-select-dropdown:visible .ant-select-item-option")
    await expect(options.first).to_be_visible()
    names = [str(await o.get_attribute("title")) for o in await options.all()]
    await page.keyboard.press("Escape")
    return names


async def test_a_workspace_is_deleted_once_its_legal_hold_is_released(
    page: Page, console: Console
) -> None:
    ws = console.call("POST", "/api/v1/workspaces", {"name": "doomed"})["id"]
    console.call(
        "POST",
        "/api/v1/processes/definitions",
        {"document": quick("doomed-quick"), "publish": True},
        workspace=ws,
    )
    done = console.call(
        "POST", "/api/v1/processes/instances", {"process_id": "doomed-quick"}, workspace=ws
    )["id"]
    console.wait_instance(done, "completed", workspace=ws)
    publish(console, waiting("kept-elsewhere"))  # the default workspace keeps its own
    console.call(
        "POST",
        "/api/v1/processes/definitions",
        {"document": waiting("doomed-waits"), "publish": True},
        workspace=ws,
    )
    running = console.call(
        "POST", "/api/v1/processes/instances", {"process_id": "doomed-waits"}, workspace=ws
    )["id"]
    hold = f"/api/v1/processes/instances/{done}/legal-hold"
    console.call("PUT", hold, {"reason": "case 7"}, workspace=ws)

    await page.reload()  # the session's workspace list now has the new one
    assert "doomed · admin" in await switcher_options(page)
    await page.goto(console.url + "/system?tab=workspaces")
    await expect(page.get_by_test_id("workspace-delete-default")).to_be_disabled()
    await page.get_by_test_id(f"workspace-delete-{ws}").click()
    await expect(page.get_by_test_id("deletion-preview")).to_contain_text("rows in")
    submit = page.get_by_test_id("deletion-submit")
    await expect(submit).to_be_disabled()
    await page.get_by_test_id("deletion-name").fill("doome")
    await expect(submit).to_be_disabled()
    await page.get_by_test_id("deletion-name").fill("doomed")
    await expect(submit).to_be_enabled()
    await shot(page, "workspace-delete-confirm")
    await submit.click()

    refused = page.get_by_test_id("deletion-refused")
    await expect(refused.get_by_test_id("problem")).to_contain_text("Conflict (409)")
    await expect(refused.get_by_test_id("problem")).to_contain_text(done)
    holds = refused.get_by_test_id("deletion-holds")
    await expect(holds.get_by_test_id(f"deletion-hold-{done}")).to_have_text(done)
    await expect(holds).to_contain_text("case 7")
    await shot(page, "workspace-delete-held")
    assert console.call("GET", f"/api/v1/workspaces/{ws}")["state"] == "active"  # nothing done

    console.call("DELETE", hold, workspace=ws)
    polled = asyncio.Event()  # the console's polls wait here: the progress view stays up
    release = asyncio.Event()

    async def held_poll(route: Route) -> None:
        polled.set()
        await release.wait()
        await route.continue_()

    await page.route(f"**/api/v1/workspaces/{ws}/deletion", held_poll)
    await page.get_by_test_id("deletion-retry").click()
    progress = page.get_by_test_id("deletion-progress")
    await expect(progress.get_by_test_id("deletion-progress-bar")).to_be_visible()
    await expect(progress.get_by_test_id("deletion-status")).to_contain_text("Deleting doomed")
    await expect(progress.get_by_test_id("deletion-tables")).to_contain_text("definitions")
    await asyncio.wait_for(polled.wait(), 20)
    await shot(page, "workspace-deleting")
    release.set()
    finished = page.get_by_test_id("deletion-done")
    await expect(finished).to_be_visible(timeout=60_000)
    await expect(finished).to_contain_text("Workspace doomed deleted")
    await expect(finished.get_by_test_id("deletion-tables")).to_contain_text("instances")
    await shot(page, "workspace-deleted")
    await page.get_by_test_id("deletion-close").click()

    await expect(page.get_by_test_id(f"workspace-delete-{ws}")).to_have_count(0)
    assert "doomed · admin" not in await switcher_options(page)
    audit = console.call("GET", f"/api/v1/audit?target_id={ws}")["items"]
    assert [r["action"] for r in audit][:2] == ["workspace.deleted", "workspace.delete"]
    deleted = audit[0]["after"]["deleted"]
    assert deleted["instances"] == 2, deleted  # the waiting one was cancelled, then deleted
    assert running  # started before the request: cancelled by it
    kept = console.call("GET", "/api/v1/processes/definitions")
    assert "kept-elsewhere" in [d["process_id"] for d in kept]
