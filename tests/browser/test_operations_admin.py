"""Operate Cadenza as a team from the console: the audit log (filters, paging, diff, export),
quotas (usage against limits, the API's 422 on a field, a start refused with its message) and
retention (policy, legal holds set on an instance and released from the list)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect
from tests.browser.console import Console, shot

WS = "default"


def waiting(process_id: str) -> dict[str, Any]:
    """A process that stays running until its approval is decided."""
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": "Waits for a decision",
        "nodes": [{"id": "ask", "type": "approval", "config": {"title": "Go?"}}],
    }


def quick(process_id: str) -> dict[str, Any]:
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": "Done at once",
        "nodes": [{"id": "only", "type": "transform", "config": {"output": "ok"}}],
    }


def publish(console: Console, document: dict[str, Any]) -> None:
    console.call("POST", "/api/v1/processes/definitions", {"document": document, "publish": True})


async def confirm_popover(page: Page) -> None:
    await page.locator(".ant-popover:visible .ant-btn-primary").click()


async def field_error(page: Page, testid: str) -> str:
    """The validation message shown under the form item holding ``testid``."""
    item = page.locator(".ant-form-item", has=page.get_by_test_id(testid)).last
    error = item.locator(".ant-form-item-explain-error")
    await expect(error).to_be_visible()
    return await error.inner_text()


async def test_audit_rows_are_filtered_paged_diffed_and_exported(
    page: Page, console: Console, tmp_path: Path
) -> None:
    for i in range(55):  # more than a page (50) of one action family
        console.call("PUT", f"/api/v1/workspaces/{WS}/secrets/AUDIT_{i:02d}", {"value": f"v{i}"})
    user = console.call(
        "POST", "/api/v1/users", {"username": "auditee", "password": "auditee-password-1"}
    )
    for role in ("viewer", "editor"):
        console.call("PUT", f"/api/v1/workspaces/{WS}/members/{user['id']}", {"role": role})

    await page.goto(console.url + "/system?tab=audit")
    actions = page.get_by_test_id("audit-action")
    await expect(actions.first).to_have_text("membership.set")  # newest first
    await expect(page.get_by_test_id("audit-actor").first).to_have_text("user:admin")
    await shot(page, "audit-log")

    await page.get_by_test_id("audit-filter-action").fill("secret.")
    await page.get_by_test_id("audit-filter-action").press("Enter")
    await expect(actions).to_have_count(50)
    await page.get_by_test_id("audit-more").click()
    await expect(actions).to_have_count(55)
    await expect(page.get_by_test_id("audit-more")).to_have_count(0)  # the last page
    assert set(await actions.all_inner_texts()) == {"secret.put"}
    await expect(page.get_by_test_id("audit-table")).not_to_contain_text("v1")  # never a value

    await page.get_by_test_id("audit-filter-action").fill("")
    await page.get_by_test_id("audit-filter-action").press("Enter")
    await page.get_by_test_id("audit-filter-target_type").fill("membership")
    await page.get_by_test_id("audit-filter-target_type").press("Enter")
    await expect(actions).to_have_count(2)
    await page.get_by_test_id("audit-actor").first.click()  # filter by this actor too
    admin_id = console.call("GET", "/api/v1/me")["user"]["id"]
    await expect(page.get_by_test_id("audit-filter-actor")).to_have_value(admin_id)
    await expect(actions).to_have_count(2)
    await actions.nth(1).click()  # the older one: no role before, viewer after
    drawer = page.get_by_test_id("audit-drawer")
    await expect(drawer.get_by_test_id("audit-diff-role")).to_have_attribute(
        "data-change", "changed"
    )
    await expect(drawer.get_by_test_id("audit-diff")).to_contain_text("viewer")
    await page.keyboard.press("Escape")
    await actions.first.click()
    await expect(drawer.get_by_test_id("audit-diff")).to_contain_text("editor")
    await shot(page, "audit-diff")
    await page.keyboard.press("Escape")

    async with page.expect_download() as started:
        await page.get_by_test_id("audit-export").click()
    download = await started.value
    assert download.url.startswith("blob:"), download.url  # fetched with the token in a header
    assert download.suggested_filename.endswith(".jsonl")
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [(r["action"], r["after"]) for r in rows] == [  # oldest first
        ("membership.set", {"role": "viewer"}),
        ("membership.set", {"role": "editor"}),
    ]

    await page.get_by_test_id("audit-filter-range").first.click()  # a range: the last hour
    async with page.expect_request(
        lambda r: "/api/v1/audit?" in r.url and "since=" in r.url and "until=" in r.url
    ):
        await page.locator(".ant-picker-presets li", has_text="Last hour").click()
    await expect(actions).to_have_count(2)


async def test_quota_limits_are_edited_and_a_start_past_them_is_refused(
    page: Page, console: Console
) -> None:
    publish(console, waiting("browser-quota"))
    await page.goto(console.url + "/system?tab=quotas")
    await expect(page.get_by_test_id("usage-max_running")).to_have_attribute(
        "data-level", "unlimited"
    )
    await expect(page.get_by_test_id("usage-tokens_per_day-unlimited")).to_have_text("Unlimited")

    limit = page.get_by_test_id("quota-max_running")
    await limit.fill("-1")
    await page.get_by_test_id("quota-save").click()
    assert "greater than or equal to 0" in await field_error(page, "quota-max_running")
    await shot(page, "quota-422")

    started = console.call("POST", "/api/v1/processes/instances", {"process_id": "browser-quota"})
    try:
        await limit.fill("1")
        await page.get_by_test_id("quota-save").click()
        await expect(page.locator(".ant-form-item-explain-error")).to_have_count(0)
        running = page.get_by_test_id("usage-max_running")
        await expect(running).to_have_attribute("data-level", "full")
        await expect(page.get_by_test_id("usage-max_running-text")).to_contain_text("/ 1")
        assert console.call("GET", f"/api/v1/workspaces/{WS}/quotas")["own"]["max_running"] == 1
        await shot(page, "quotas", full=True)

        await page.goto(console.url + "/processes/browser-quota")
        await page.get_by_test_id("designer-run").click()
        await page.get_by_test_id("run-start").click()
        problem = page.get_by_test_id("run-modal").get_by_test_id("problem")
        await expect(problem).to_contain_text("Quota exceeded (429)")
        await expect(problem).to_contain_text("its limit (max_running) is 1")
        await shot(page, "quota-refused-start")
    finally:
        console.call("PUT", f"/api/v1/workspaces/{WS}/quotas", {})
        console.call("POST", f"/api/v1/processes/instances/{started['id']}/cancel")


async def test_retention_policy_is_saved_and_a_legal_hold_is_set_and_released(
    page: Page, console: Console
) -> None:
    publish(console, quick("browser-hold"))
    started = console.call("POST", "/api/v1/processes/instances", {"process_id": "browser-hold"})
    iid = started["id"]
    console.wait_instance(iid, "completed")

    await page.goto(console.url + "/system?tab=retention")
    source = page.get_by_test_id("retention-source")
    await expect(source).to_have_text("The server's default")
    await page.get_by_test_id("retention-finished_s").fill("30")
    await page.get_by_test_id("retention-failed_s").fill("10")
    await page.get_by_test_id("retention-save").click()
    assert "at least finished_s" in await field_error(page, "retention-failed_s")
    await page.get_by_test_id("retention-failed_s").fill("90")
    await page.get_by_test_id("retention-save").click()
    await expect(source).to_have_text("This workspace's own policy")
    policy = console.call("GET", f"/api/v1/workspaces/{WS}/retention")
    assert (policy["finished_s"], policy["failed_s"]) == (30 * 86_400, 90 * 86_400)
    await page.reload()
    await expect(page.get_by_test_id("retention-finished_s")).to_have_value("30")

    await page.goto(f"{console.url}/instances/{iid}")
    await page.get_by_test_id("legal-hold-add").click()
    await page.get_by_test_id("legal-hold-reason").fill("case 42")
    await page.get_by_test_id("legal-hold-confirm").click()
    await expect(page.get_by_test_id("legal-hold-tag")).to_be_visible()
    await expect(page.get_by_test_id("legal-hold-release")).to_be_visible()
    await shot(page, "instance-legal-hold")

    await page.goto(console.url + "/system?tab=retention")
    holds = page.get_by_test_id("holds-table")
    await expect(holds.get_by_test_id(f"hold-{iid}")).to_be_visible()
    await expect(holds).to_contain_text("case 42")
    await shot(page, "retention", full=True)
    await page.get_by_test_id(f"hold-release-{iid}").click()
    await confirm_popover(page)
    await expect(holds.get_by_test_id(f"hold-{iid}")).to_have_count(0)
    assert console.call("GET", f"/api/v1/processes/instances/{iid}/legal-hold")["held"] is False

    await page.get_by_test_id("retention-reset").click()
    await confirm_popover(page)
    await expect(source).to_have_text("The server's default")

    await page.goto(console.url + "/system?tab=audit")
    await page.get_by_test_id("audit-filter-target_id").fill(iid)
    await page.get_by_test_id("audit-filter-target_id").press("Enter")
    actions = page.get_by_test_id("audit-action")
    await expect(actions).to_have_count(3)
    assert await actions.all_inner_texts() == [
        "instance.legal_hold_release",
        "instance.legal_hold",
        "instance.start",
    ]


async def test_a_workspace_admin_reads_quotas_and_only_its_workspace_audit(
    browser: Browser, console: Console
) -> None:
    password = "workspace-admin-password"
    user = console.call("POST", "/api/v1/users", {"username": "ws-admin", "password": password})
    console.call("PUT", f"/api/v1/workspaces/{WS}/members/{user['id']}", {"role": "admin"})
    context = await browser.new_context(viewport={"width": 1680, "height": 1000}, locale="en-US")
    try:
        page = await context.new_page()
        page.set_default_timeout(20_000)
        await page.goto(console.url + "/login")
        await page.get_by_test_id("login-username").fill("ws-admin")
        await page.get_by_test_id("login-password").fill(password)
        await page.get_by_test_id("login-submit").click()
        await page.get_by_test_id("processes-page").wait_for()

        await page.goto(console.url + "/system?tab=quotas")
        await expect(page.get_by_test_id("quota-usage")).to_be_visible()
        await expect(page.get_by_test_id("quotas-tab")).to_contain_text(
            "Only system administrators change limits."
        )
        await expect(page.get_by_test_id("quota-max_running")).to_be_disabled()
        await expect(page.get_by_test_id("quota-save")).to_have_count(0)

        await page.goto(console.url + "/system?tab=audit")
        actions = page.get_by_test_id("audit-action")
        await expect(actions.first).to_be_visible()
        await page.get_by_test_id("audit-filter-action").fill("user.")  # system rows
        await page.get_by_test_id("audit-filter-action").press("Enter")
        await expect(page.get_by_test_id("audit-table")).to_contain_text("No audit entries")
        await expect(actions).to_have_count(0)
    finally:
        await context.close()
