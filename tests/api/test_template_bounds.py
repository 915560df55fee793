"""Security regressions for issue 9 (High 2) over the API: ``vars`` over their budget refuse
the start with a 422, and the server answers while a template renders."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tests.api.harness import document, serve

NESTED = "{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}"
ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def _transform(output: str) -> list[dict[str, Any]]:
    return [{"id": "t", "type": "transform", "config": {"output": output}}]


async def test_vars_over_their_budget_refuse_the_start(sqlite_url: str) -> None:
    async with serve(sqlite_url, template_time_ms=600_000) as srv:
        c = srv.admin
        doc = document("bomb", vars={"v": NESTED})
        published = await c.post(
            "/api/v1/processes/definitions", {"document": doc, "publish": True}
        )
        assert published.status == 201, published.body
        r = await c.post("/api/v1/processes/instances", {"process_id": "bomb"})
        assert r.status == 422, r.body
        assert r.body["detail"] == (
            f"vars of 'bomb' failed to render: template {NESTED[:57] + '...'!r}: "
            "exceeded the step budget of 1000000 steps"
        )
        assert (await c.get("/api/v1/processes/instances")).body["items"] == []  # none stored


async def test_health_answers_while_a_template_renders(sqlite_url: str) -> None:
    limits: dict[str, Any] = {"template_time_ms": 600_000, "template_max_steps": 10**12}
    async with serve(sqlite_url, **limits) as srv:
        c, templates = srv.admin, srv.runtime.templates
        doc = document("slow", nodes=_transform(ENDLESS))
        published = await c.post(
            "/api/v1/processes/definitions", {"document": doc, "publish": True}
        )
        assert published.status == 201, published.body
        started = await c.post("/api/v1/processes/instances", {"process_id": "slow"})
        assert started.status == 201, started.body
        while templates.running == 0:
            await asyncio.sleep(0.001)
        health = await srv.anonymous.get("/health")
        assert health.status == 200
        assert templates.running == 1  # answered while the render was still running
        cancelled = await c.post(f"/api/v1/processes/instances/{started.body['id']}/cancel")
        assert cancelled.status in (200, 202), cancelled.body
        while templates.running:
            await asyncio.sleep(0.001)
