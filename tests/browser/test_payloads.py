"""Large payloads kept in the blob store: the instance page shows their size and preview in
place of the value and loads the whole value on demand; small ones are shown as they are."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Page, expect
from tests.browser.console import Console, shot

ECHO: dict[str, Any] = {
    "schema": "cadenza/v1",
    "id": "browser-large",
    "name": "Echoes a large text",
    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
    "outputs": {"size": "{{ inputs.text | length }}"},
    "nodes": [{"id": "echo", "type": "transform", "config": {"output": "{{ inputs.text }}"}}],
}


async def test_an_offloaded_payload_shows_its_size_and_preview(
    page: Page, console: Console
) -> None:
    console.call("POST", "/api/v1/processes/definitions", {"document": ECHO, "publish": True})
    text = "large-payload " + "x" * 40_000
    started = console.call(
        "POST",
        "/api/v1/processes/instances",
        {"process_id": "browser-large", "inputs": {"text": text}},
    )
    console.wait_instance(started["id"], "completed")
    await page.goto(f"{console.url}/instances/{started['id']}")
    row = page.locator("tr", has=page.get_by_test_id("task-row-echo"))
    await row.locator(".ant-table-row-expand-icon").click()  # the task's detail and output
    output = page.get_by_test_id("task-output-echo")
    await expect(output).to_have_attribute("data-offloaded", "true")
    await expect(page.get_by_test_id("task-output-echo-offloaded")).to_contain_text("39.1 KB")
    await expect(output).to_contain_text("large-payload xxxx")
    await page.get_by_test_id("task-output-echo-load").click()  # the whole value, on demand
    full = page.get_by_test_id("task-output-echo-full")
    await expect(full).to_be_visible()
    assert (await full.inner_text()).strip() == text
    await page.get_by_role("tab", name="Inputs & outputs").click()
    outputs = page.get_by_test_id("instance-outputs")  # small: shown as it is
    await expect(outputs).to_contain_text('"size": 40014')
    await shot(page, "payload-offloaded")


LONG_ERROR: dict[str, Any] = {
    "schema": "cadenza/v1",
    "id": "browser-long-error",
    "name": "Fails with a long error",
    "nodes": [
        {
            "id": "call",
            "type": "http",
            # a private address the egress guard refuses: the error quotes the whole URL
            "config": {"method": "GET", "url": "http://10.255.255.1/{{ inputs.path }}"},
        }
    ],
}


async def test_an_offloaded_error_shows_its_preview_and_loads_on_demand(
    page: Page, console: Console
) -> None:
    console.call("POST", "/api/v1/processes/definitions", {"document": LONG_ERROR, "publish": True})
    path = "long-error-" + "e" * 20_000
    started = console.call(
        "POST",
        "/api/v1/processes/instances",
        {"process_id": "browser-long-error", "inputs": {"path": path}},
    )
    failed = console.wait_instance(started["id"], "failed")
    assert failed["error_payload"] is not None, failed
    await page.goto(f"{console.url}/instances/{started['id']}")
    block = page.get_by_test_id("instance-error-offloaded")
    await expect(block).to_have_attribute("data-offloaded", "true")
    await expect(block).to_contain_text("long-error-eee")
    await page.get_by_test_id("instance-error-offloaded-load").click()
    full = page.get_by_test_id("instance-error-offloaded-full")
    await expect(full).to_be_visible()
    assert path in await full.inner_text()
    row = page.locator("tr", has=page.get_by_test_id("task-row-call"))
    await row.locator(".ant-table-row-expand-icon").click()
    task_error = page.get_by_test_id("task-error-call")
    await expect(task_error).to_have_attribute("data-offloaded", "true")
    await page.get_by_test_id("task-error-call-load").click()
    await expect(page.get_by_test_id("task-error-call-full")).to_contain_text(path[:40])
    await shot(page, "payload-offloaded-error")
