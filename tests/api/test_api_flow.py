"""End to end over a real uvicorn server: create, publish, start, stream, complete."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from tests.api.harness import document, serve


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def _read_sse(resp: aiohttp.ClientResponse, until: str) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "data" in current:
                messages.append(current)
                if current.get("event") == until:
                    return messages
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        current[key] = value
    return messages


async def test_create_publish_start_stream_complete(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        c = srv.admin
        saved = await c.post("/api/v1/processes/definitions", {"document": document()})
        assert saved.status == 201, saved.body
        assert saved.body["status"] == "draft"
        published = await c.post(
            f"/api/v1/processes/definitions/hello/versions/{saved.body['version']}/publish"
        )
        assert published.body["status"] == "published"
        headers = {"Authorization": f"Bearer {c.token}"}
        async with c.session.get(
            srv.base + "/api/v1/events/stream", headers=headers, timeout=aiohttp.ClientTimeout(10)
        ) as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(_read_sse(stream, "InstanceCompleted"))
            started = await c.post(
                "/api/v1/processes/instances", {"process_id": "hello", "inputs": {"name": "Ada"}}
            )
            assert started.status == 201, started.body
            messages = await asyncio.wait_for(reader, 10)
        types = [m["event"] for m in messages]
        assert types[0] == "InstanceStarted"
        assert "TaskCompleted" in types
        last = json.loads(messages[-1]["data"])
        assert last["instance_id"] == started.body["id"]
        assert last["data"]["outputs"] == {"greeting": "hello Ada"}
        detail = await c.get(f"/api/v1/processes/instances/{started.body['id']}")
        assert detail.body["status"] == "completed"
        assert [t["node_id"] for t in detail.body["tasks"]] == ["start", "greet", "end"]
