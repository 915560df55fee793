"""Build a process in the designer by drag and drop, publish it, run it, watch it live."""

from __future__ import annotations

from playwright.async_api import Page, expect
from tests.browser.console import Console, shot

# (palette type, x, y) on the canvas: a condition and a parallel branch joined at the end
DROPS = [
    ("transform", 20, 200),
    ("condition", 290, 40),
    ("transform", 290, 330),
    ("transform", 570, 40),
    ("transform", 570, 330),
]
EDGES = [
    ("transform_1", "out", "condition_1"),
    ("transform_1", "out", "transform_2"),  # the parallel branch
    ("condition_1", "yes", "transform_3"),
    ("condition_1", "no", "transform_3"),
    ("transform_2", "out", "transform_4"),
    ("transform_3", "out", "transform_4"),
]
NODES = ["transform_1", "condition_1", "transform_2", "transform_3", "transform_4"]


async def connect(page: Page, source: str, port: str, target: str) -> None:
    start = await page.get_by_test_id(f"handle-{source}-{port}").bounding_box()
    end = await page.get_by_test_id(f"handle-{target}-in").bounding_box()
    assert start is not None
    assert end is not None
    await page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    await page.mouse.up()


async def test_build_publish_and_run_a_process_live(page: Page, console: Console) -> None:
    await page.get_by_test_id("processes-new").click()
    await page.get_by_test_id("process-id").fill("browser-flow")
    await page.get_by_test_id("process-name").fill("Built in the browser")
    canvas = page.get_by_test_id("canvas")
    await expect(page.get_by_test_id("canvas-empty")).to_be_visible()
    for kind, x, y in DROPS:
        await page.get_by_test_id(f"palette-{kind}").drag_to(
            canvas, target_position={"x": x, "y": y}
        )
    for node in NODES:
        await expect(page.get_by_test_id(f"node-{node}")).to_be_visible()

    for source, port, target in EDGES:
        await connect(page, source, port, target)
    await expect(page.locator(".react-flow__edge")).to_have_count(len(EDGES))

    # the condition takes its first branch: edit it in the generated form
    await page.get_by_test_id("node-condition_1").click()
    when = page.get_by_test_id("config-branches-0-when")
    await when.fill("1 == 1")
    await shot(page, "designer-built")

    await page.get_by_test_id("designer-save").click()
    await expect(page.get_by_test_id("designer-version")).to_contain_text("v1")
    stored = console.call("GET", "/api/v1/processes/definitions/browser-flow/versions/1")
    document = stored["document"]
    assert [n["id"] for n in document["nodes"]] == NODES
    assert {"from": "condition_1.yes", "to": "transform_3"} in document["edges"]
    assert document["nodes"][1]["config"]["branches"][0]["when"] == "1 == 1"
    assert set(document["layout"]) == set(NODES)

    await page.get_by_test_id("designer-publish").click()
    await page.get_by_role("button", name="OK").click()
    await expect(page.get_by_test_id("designer-version")).to_contain_text("published")

    await page.get_by_test_id("designer-run").click()
    await page.get_by_test_id("run-start").click()
    # the statuses arrive over the live stream; the canvas is never reloaded
    for node in NODES:
        await expect(page.get_by_test_id(f"node-{node}")).to_have_attribute(
            "data-status", "completed", timeout=30_000
        )
    await expect(page.get_by_test_id("run-banner")).to_have_attribute("data-status", "completed")
    await shot(page, "designer-run-live")

    await page.get_by_test_id("run-instance-link").click()
    await expect(page.get_by_test_id("instance-status")).to_have_attribute(
        "data-status", "completed"
    )
    await expect(page.get_by_test_id("tasks-table")).to_contain_text("transform_4")
    await shot(page, "instance-detail", full=True)


async def test_validation_problems_show_on_their_node(page: Page) -> None:
    await page.get_by_test_id("processes-new").click()
    await page.get_by_test_id("palette-llm").dblclick()  # an llm node without a prompt
    await page.get_by_test_id("designer-validate").click()
    await expect(page.get_by_test_id("node-problems-llm_1")).to_be_visible()
    await expect(page.get_by_test_id("inspector-problems")).to_contain_text("prompt")
    await shot(page, "designer-problems")
