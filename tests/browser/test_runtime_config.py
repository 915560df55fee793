"""Configure Cadenza at runtime from the console: model providers and MCP servers (credentials
write-only, environment entries read-only), live settings, and PII redaction with the
redacted fields shown on an instance."""

from __future__ import annotations

import json
from typing import Any

from playwright.async_api import Page, expect
from tests.browser.console import Console, shot

WS = "default"
KEY_CANARY = "sk-canary-0123456789abcdef"
HEADER_CANARY = "Bearer canary-mcp-4242"


async def pick(page: Page, testid: str, option: str) -> None:
    """Choose ``option`` in the antd select holding ``testid``."""
    await page.get_by_test_id(testid).click()
    await page.locator(
        f".ant-select-dropdown:visible .ant-select-item-option[title='{option}']"
    ).click()


async def close_modal(page: Page) -> None:
    await page.locator(".ant-modal-wrap:visible .ant-modal-close").click()
    await expect(page.locator(".ant-modal-wrap:visible")).to_have_count(0)


async def confirm_popover(page: Page) -> None:
    await page.locator(".ant-popover:visible .ant-btn-primary").click()


async def test_providers_and_mcp_servers_are_configured_with_write_only_credentials(
    page: Page, console: Console
) -> None:
    await page.goto(console.url + "/agents?tab=providers")
    await expect(page.get_by_test_id("provider-config-source-offline")).to_have_attribute(
        "data-scope", "environment"
    )
    await expect(page.get_by_test_id("provider-config-edit-offline")).to_have_count(0)

    await page.get_by_test_id("provider-config-new").click()
    await page.get_by_test_id("provider-config-name").fill("team-llm")
    await pick(page, "provider-config-kind", "offline")
    await page.get_by_test_id("provider-config-api_key").fill(KEY_CANARY)
    await page.get_by_test_id("provider-config-save").click()
    await expect(page.get_by_test_id("provider-config-source-team-llm")).to_have_attribute(
        "data-scope", "workspace"
    )
    await expect(page.get_by_test_id("provider-configs-table")).to_contain_text("key set")
    stored = console.call("GET", "/api/v1/config/providers")
    assert KEY_CANARY not in json.dumps(stored)
    assert {p["name"]: p["has_api_key"] for p in stored}["team-llm"] is True

    await page.get_by_test_id("provider-config-edit-team-llm").click()
    await expect(page.get_by_test_id("provider-config-api_key")).to_have_value("")
    await expect(page.get_by_test_id("provider-config-form")).to_contain_text("A key is stored")
    await close_modal(page)
    await expect(page.locator("body")).not_to_contain_text(KEY_CANARY)

    await page.get_by_test_id("provider-config-new").click()  # refused by its test call
    await page.get_by_test_id("provider-config-name").fill("unreachable")
    await page.get_by_test_id("provider-config-base_url").fill("http://127.0.0.1:9/v1")
    await page.get_by_test_id("provider-config-save").click()
    await expect(page.locator(".ant-modal:visible").get_by_test_id("problem")).to_contain_text(
        "URL refused"
    )
    await shot(page, "provider-config-refused")
    await close_modal(page)
    await expect(page.get_by_test_id("provider-config-unreachable")).to_have_count(0)

    await page.goto(console.url + "/agents?tab=mcp")
    await page.get_by_test_id("mcp-config-new").click()
    await page.get_by_test_id("mcp-config-name").fill("team-tools")
    await page.get_by_test_id("mcp-config-url").fill("https://93.184.216.34/mcp")
    await page.get_by_test_id("mcp-config-headers-add").click()
    await page.get_by_test_id("mcp-config-headers-name-0").fill("Authorization")
    await page.get_by_test_id("mcp-config-headers-value-0").fill(HEADER_CANARY)
    await page.get_by_test_id("mcp-config-validate").uncheck()  # no server to shake hands with
    await page.get_by_test_id("mcp-config-save").click()
    table = page.get_by_test_id("mcp-configs-table")
    await expect(page.get_by_test_id("mcp-config-team-tools")).to_be_visible()
    await expect(table).to_contain_text("Authorization")
    await expect(page.locator("body")).not_to_contain_text(HEADER_CANARY)
    servers = console.call("GET", "/api/v1/config/mcp-servers")
    assert HEADER_CANARY not in json.dumps(servers)
    assert {s["name"]: s["header_names"] for s in servers}["team-tools"] == ["Authorization"]
    await shot(page, "mcp-configs", full=True)
    await page.get_by_test_id("mcp-config-delete-team-tools").click()
    await confirm_popover(page)
    await expect(page.get_by_test_id("mcp-config-team-tools")).to_have_count(0)


async def test_live_settings_change_and_environment_ones_are_read_only(
    page: Page, console: Console
) -> None:
    await page.goto(console.url + "/system?tab=settings")
    await expect(page.get_by_test_id("setting-source-mcp_breaker_failures")).to_have_text(
        "Environment · read-only"
    )
    await expect(page.get_by_test_id("setting-input-mcp_breaker_failures")).to_have_count(0)
    source = page.get_by_test_id("setting-source-mcp_call_timeout_s")
    await expect(source).to_have_text("Default")
    await page.get_by_test_id("setting-input-mcp_call_timeout_s").fill("45")
    await page.get_by_test_id("setting-save-mcp_call_timeout_s").click()
    await expect(source).to_have_text("Set here")
    live = {s["name"]: s for s in console.call("GET", "/api/v1/config/settings")}
    assert (live["mcp_call_timeout_s"]["value"], live["mcp_call_timeout_s"]["source"]) == (
        45,
        "database",
    )
    await shot(page, "live-settings")
    await page.get_by_test_id("setting-reset-mcp_call_timeout_s").click()
    await confirm_popover(page)
    await expect(source).to_have_text("Default")


ECHO: dict[str, Any] = {
    "schema": "cadenza/v1",
    "id": "browser-pii",
    "name": "Echoes its inputs",
    "inputs": {"type": "object", "properties": {"contact": {"type": "string"}}},
    "outputs": {"contact": "{{ inputs.contact }}"},
    "nodes": [{"id": "echo", "type": "transform", "config": {"output": "{{ inputs.contact }}"}}],
}


async def test_pii_redaction_is_switched_on_and_redacted_fields_are_shown(
    page: Page, console: Console
) -> None:
    await page.goto(console.url + "/system?tab=privacy")
    switch = page.get_by_test_id("redaction-enabled")
    await expect(switch).to_have_attribute("aria-checked", "false")  # off by default
    await switch.click()
    await page.get_by_test_id("redaction-rule-add").click()
    await page.get_by_test_id("redaction-rule-name-0").fill("order")
    await page.get_by_test_id("redaction-rule-pattern-0").fill("(?<=x)y")
    await page.get_by_test_id("redaction-save").click()
    problem = page.get_by_test_id("redaction-form").get_by_test_id("problem")
    await expect(problem).to_contain_text("not an RE2 pattern")
    await page.get_by_test_id("redaction-rule-pattern-0").fill(r"ORD-\d{6}")
    await page.get_by_test_id("redaction-save").click()
    await expect(page.get_by_text("Redaction rules saved")).to_be_visible()
    await expect(problem).to_have_count(0)
    try:
        rules = console.call("GET", f"/api/v1/workspaces/{WS}/redaction")
        assert (rules["enabled"], rules["custom"][0]["name"]) == (True, "order")
        await shot(page, "redaction", full=True)

        console.call("POST", "/api/v1/processes/definitions", {"document": ECHO, "publish": True})
        contact = "alice@example.com about ORD-123456"
        started = console.call(
            "POST",
            "/api/v1/processes/instances",
            {"process_id": "browser-pii", "inputs": {"contact": contact}},
        )
        console.wait_instance(started["id"], "completed")
        await page.goto(f"{console.url}/instances/{started['id']}")
        await expect(page.get_by_test_id("instance-redacted")).to_be_visible()
        await page.get_by_role("tab", name="Inputs & outputs").click()
        outputs = page.get_by_test_id("instance-outputs")
        await expect(outputs).to_contain_text("[email]")
        await expect(outputs).to_contain_text("[order]")
        await expect(page.locator("body")).not_to_contain_text("alice@example.com")
        await shot(page, "instance-redacted")
    finally:
        console.call("PUT", f"/api/v1/workspaces/{WS}/redaction", {"enabled": False})
