"""Operate the system from the console: approvals inbox, agents' health, language, screens."""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import Page, expect
from tests.browser.console import Console, shot

APPROVAL: dict[str, Any] = {
    "schema": "cadenza/v1",
    "id": "browser-approval",
    "name": "Refund with approval",
    "inputs": {"type": "object", "properties": {"amount": {"type": "number"}}},
    "outputs": {"decision": "{{ nodes.ask.output.decision }}"},
    "nodes": [
        {"id": "ask", "type": "approval", "config": {"title": "Refund {{ inputs.amount }}?"}},
        {"id": "done", "type": "transform", "config": {"output": "decided"}},
    ],
    "edges": [{"from": "ask", "to": "done"}],
}


async def test_approve_a_task_from_the_inbox(page: Page, console: Console) -> None:
    console.call("POST", "/api/v1/processes/definitions", {"document": APPROVAL, "publish": True})
    started = console.call(
        "POST",
        "/api/v1/processes/instances",
        {"process_id": "browser-approval", "inputs": {"amount": 42}},
    )
    await page.get_by_test_id("nav-approvals").click()
    row = page.get_by_test_id("approval-ask")
    await expect(row).to_have_text("Refund 42?")
    await shot(page, "approvals-inbox")
    await page.get_by_test_id("approve-ask").click()
    await page.get_by_test_id("decision-comment").fill("fine by me")
    await page.get_by_test_id("decision-confirm").click()
    await expect(row).to_have_count(0)
    done = console.wait_instance(started["id"], "completed")
    assert done["outputs"]["decision"].startswith("approve"), done["outputs"]


async def test_agent_health_is_shown(page: Page, console: Console) -> None:
    agent = console.call(
        "POST",
        "/api/v1/agents/register",
        {"name": "browser-worker", "type": "worker", "capabilities": ["support"], "capacity": 4},
    )
    # A worker is healthy while it sends heartbeats; the first health round may race the first one.
    deadline = time.monotonic() + 15
    path = f"/api/v1/agents/{agent['id']}"
    while (
        console.call("POST", f"{path}/heartbeat")["status"] != "healthy"
        or console.call("GET", path)["status"] != "healthy"
    ):
        assert time.monotonic() < deadline, "the worker agent never became healthy"
        time.sleep(0.3)
    await page.get_by_test_id("nav-agents").click()
    health = page.get_by_test_id("agent-health-browser-worker")
    await expect(health).to_have_attribute("data-status", "healthy")
    await expect(page.get_by_test_id("agents-table")).to_contain_text("support")
    await shot(page, "agents")
    await page.get_by_test_id("tab-providers").click()
    await expect(page.get_by_test_id("providers-table")).to_be_visible()
    await shot(page, "providers")


async def test_switch_language_to_chinese_and_back(page: Page) -> None:
    await expect(page.get_by_test_id("nav-processes")).to_have_text("Processes")
    await page.get_by_test_id("language-select").click()
    await page.get_by_title("简体中文").click()
    await expect(page.get_by_test_id("nav-processes")).to_have_text("流程")
    await expect(page.get_by_test_id("processes-new")).to_contain_text("新建流程")
    await shot(page, "processes-zh")
    await page.reload()  # the choice is remembered
    await expect(page.get_by_test_id("nav-approvals")).to_have_text("审批")
    await page.get_by_test_id("language-select").click()
    await page.get_by_title("English").click()
    await expect(page.get_by_test_id("nav-approvals")).to_have_text("Approvals")


async def test_main_screens_render(page: Page) -> None:
    screens = [
        ("nav-instances", "instances-page", "instances"),
        ("nav-dashboard", "dashboard-page", "dashboard"),
        ("nav-system", "system-page", "system-users"),
    ]
    for nav, testid, name in screens:
        await page.get_by_test_id(nav).click()
        await expect(page.get_by_test_id(testid)).to_be_visible()
        await expect(page.get_by_test_id("problem")).to_have_count(0)
        await shot(page, name)
    await page.get_by_test_id("tab-keys").click()
    await page.get_by_test_id("keys-new").click()
    await page.get_by_test_id("key-name").fill("ci")
    await page.get_by_role("button", name="Create").click()
    await expect(page.get_by_test_id("key-secret")).not_to_be_empty()
    await shot(page, "api-key-once")
