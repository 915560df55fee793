"""SSE resume: a client that disconnects and reconnects with ``Last-Event-ID`` sees every
event exactly once, in order, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from tests.api.harness import Client, document, serve

FANOUT = document(
    "fan",
    nodes=[
        {
            "id": "each",
            "type": "map",
            "config": {
                "items": "inputs.items",
                "concurrency": 4,
                "body": {
                    "nodes": [{"id": "double", "type": "transform", "config": {"output": "x"}}]
                },
            },
        }
    ],
    inputs={"type": "object", "properties": {"items": {"type": "array"}}},
    outputs={},
)


async def _messages(
    c: Client, last_event_id: str | None, count: int, **params: str
) -> list[dict[str, Any]]:
    """Read ``count`` messages, then drop the connection."""
    headers = {"Authorization": f"Bearer {c.token}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    out: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    async with c.session.get(
        c.base + "/api/v1/events/stream",
        headers=headers,
        params=params,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as r:
        assert r.status == 200
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith(("retry:", ":")):
                continue
            if line:
                key, _, value = line.partition(": ")
                current[key] = value
                continue
            if "data" in current:
                out.append({**json.loads(current["data"]), "sse_id": current["id"]})
                if len(out) == count:
                    return out
            current = {}
    return out


async def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(
    database_url: str,
) -> None:
    async with serve(database_url) as srv:
        c = srv.admin
        assert (
            await c.post("/api/v1/processes/definitions", {"document": FANOUT, "publish": True})
        ).status == 201
        ids = []
        for n in range(3):
            r = await c.post(
                "/api/v1/processes/instances",
                {"process_id": "fan", "inputs": {"items": list(range(10 + n))}},
            )
            assert r.status == 201, r.body
            ids.append(r.body["id"])
        for iid in ids:  # all finished: the whole history is in the feed
            await srv.runtime.engine.wait_finished(iid)
        journals = {
            iid: [e["seq"] for e in (await c.get(f"/api/v1/processes/instances/{iid}/events")).body]
            for iid in ids
        }
        total = sum(len(v) for v in journals.values())

        seen: list[dict[str, Any]] = []
        cursor: str | None = "0-0"
        while len(seen) < total:  # read in small bites, reconnecting after each
            bite = await _messages(c, cursor, min(7, total - len(seen)))
            assert bite, "the stream ended early"
            seen.extend(bite)
            cursor = bite[-1]["sse_id"]

        positions = [m["sse_id"] for m in seen]
        assert len(positions) == len(set(positions)) == total
        for iid, seqs in journals.items():
            assert [m["seq"] for m in seen if m["instance_id"] == iid] == seqs

        # a live subscriber resuming mid-run also sees everything of a new instance once
        head = seen[-1]["sse_id"]
        task = asyncio.create_task(_messages(c, head, 1))
        first = await c.post(
            "/api/v1/processes/instances", {"process_id": "fan", "inputs": {"items": [1, 2]}}
        )
        await srv.runtime.engine.wait_finished(first.body["id"])
        got = await asyncio.wait_for(task, 10)
        assert got[0]["instance_id"] == first.body["id"]
        assert got[0]["type"] == "InstanceStarted"
        expected = (await c.get(f"/api/v1/processes/instances/{first.body['id']}/events")).body
        rest = await _messages(c, got[0]["sse_id"], len(expected) - 1, instance_id=first.body["id"])
        assert [m["seq"] for m in [*got, *rest]] == [e["seq"] for e in expected]


async def test_a_malformed_last_event_id_is_a_clear_error(tmp_path: Any) -> None:
    async with serve(f"sqlite:///{tmp_path / 'a.db'}") as srv:
        r = await srv.admin.get("/api/v1/events/stream", headers={"Last-Event-ID": "garbage"})
        assert r.status == 409
        assert "Last-Event-ID" in r.body["detail"]
