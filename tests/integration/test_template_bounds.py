"""Security regressions for issue 9 (High 2, High 5) on a real engine: a template over its
budget fails its task with the budget in the error, a node ``timeout`` stops a render (its
thread too), and the engine keeps working for other instances while a render runs."""

from __future__ import annotations

import asyncio

from tests.integration.engine_harness import doc, engine_on, run, start

from cadenza.domain.commands import CancelInstance
from cadenza.domain.status import InstanceStatus
from cadenza.infrastructure.templating import JinjaTemplates

ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
NESTED = "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}"


def _transform(node_id: str, output: object, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": "transform", "config": {"output": output}, **extra}


async def test_a_template_over_its_budget_fails_its_task(database_url: str) -> None:
    async with engine_on(database_url, template_time_ms=600_000) as rt:
        inst = await run(rt, doc([_transform("bomb", {"x": NESTED})]))
    assert inst.status is InstanceStatus.FAILED
    assert inst.error is not None
    assert f"transform 'bomb': template {NESTED[:57] + '...'!r}: " in inst.error
    assert inst.error.endswith("exceeded the step budget of 1000000 steps")


async def test_node_timeout_stops_a_template_render(database_url: str) -> None:
    # The render would take hours and its own budget is ten minutes: only the timeout ends it.
    limits = {"template_time_ms": 600_000, "template_max_steps": 10**12}
    async with engine_on(database_url, **limits) as rt:
        inst = await run(rt, doc([_transform("slow", ENDLESS, timeout="100ms")]))
        assert rt.templates.running == 0  # the render's thread stopped, not just the task
    assert inst.status is InstanceStatus.FAILED
    assert "timed out after 0.1s" in (inst.error or "")


async def test_other_instances_run_while_a_template_renders(database_url: str) -> None:
    limits = {"template_time_ms": 600_000, "template_max_steps": 10**12}
    async with engine_on(database_url, **limits) as rt:
        slow = await start(rt, doc([_transform("slow", ENDLESS)], id="slow"))
        while rt.templates.running == 0:
            await asyncio.sleep(0.001)
        quick = await run(rt, doc([_transform("quick", "{{ 1 + 1 }}")], id="quick"))
        assert quick.status is InstanceStatus.COMPLETED
        assert rt.templates.running == 1  # the slow render was running all along
        await rt.engine.submit(CancelInstance(slow))
        done = await asyncio.wait_for(rt.engine.wait_finished(slow), 20)
        assert done.status is InstanceStatus.CANCELLED
        # The cancelled task stops its render's thread (the engine cancels it after the commit).
        await asyncio.wait_for(_until_stopped(rt.templates), 20)


async def _until_stopped(templates: JinjaTemplates) -> None:
    while templates.running:
        await asyncio.sleep(0.001)
