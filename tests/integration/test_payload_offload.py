"""Payload offload on every SQL backend with a tiny threshold: the engine (downstream nodes,
retries, a replay after a restart) always sees the real values, while the rows hold markers
and the blob directory holds the values."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from tests.integration.engine_harness import doc, engine_on, start
from tests.net import any_route_server

from cadenza.application.payloads import MARKER
from cadenza.application.ports_retention import LegalHold, StoredPolicy
from cadenza.application.retention_job import RetentionJob, RetentionSettings
from cadenza.bootstrap import Runtime
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.retention import RetentionPolicy
from cadenza.domain.status import InstanceStatus
from cadenza.infrastructure.sql.retention import SqlRetention
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import events, instances, tasks

THRESHOLD = 256


class Echo:
    """An HTTP peer that fails the first call and echoes the JSON it gets; keeps the bodies."""

    def __init__(self) -> None:
        self.bodies: list[object] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if len(self.bodies) == 1:
            return web.json_response({"error": "try again"}, status=503)
        return web.json_response({"echo": body["text"]})


@asynccontextmanager
async def echo_peer() -> AsyncIterator[Echo]:
    echo = Echo()
    async with any_route_server(echo.handle) as base:
        echo.url = f"{base}/echo"
        yield echo


def workflow(url: str) -> JSONObject:
    """inputs.text -> a (copy) -> call (http, retried) -> pause (timer) -> b -> outputs."""
    return doc(
        [
            {"id": "a", "type": "transform", "config": {"output": {"copy": "{{ inputs.text }}"}}},
            {
                "id": "call",
                "type": "http",
                "config": {
                    "url": url,
                    "method": "POST",
                    "json": {"text": "{{ nodes.a.output.copy }}"},
                },
                "retry": {"max_attempts": 3, "backoff": "fixed", "initial": "20ms"},
            },
            {"id": "pause", "type": "wait", "config": {"duration": "400ms"}},
            {
                "id": "b",
                "type": "transform",
                "config": {"output": "{{ nodes.call.output.body.echo }}"},
            },
        ],
        [
            {"from": "a", "to": "call"},
            {"from": "call", "to": "pause"},
            {"from": "pause", "to": "b"},
        ],
        outputs={"text": "{{ nodes.b.output }}", "small": "ok"},
    )


def options(blob_dir: Path) -> dict[str, object]:
    return {"payload_offload_bytes": THRESHOLD, "blob_dir": str(blob_dir)}


async def wait_finished(rt: Runtime, iid: str) -> Instance:
    return await asyncio.wait_for(rt.engine.wait_finished(iid), 30)


async def raw_rows(rt: Runtime, iid: str) -> tuple[list[str], dict[str, Any]]:
    """The instance's rows as the database holds them: every payload column's JSON text, and
    the instance row, its tasks and events by name."""
    assert isinstance(rt.store, SqlStore)
    texts: list[str] = []
    found: dict[str, Any] = {}
    async with rt.store.engine.connect() as conn:
        inst = (await conn.execute(sa.select(instances).where(instances.c.id == iid))).one()
        found["inputs"], found["outputs"] = inst.inputs, inst.outputs
        texts += [json.dumps(inst.inputs), json.dumps(inst.outputs), str(inst.error)]
        for r in await conn.execute(sa.select(tasks).where(tasks.c.instance_id == iid)):
            found[f"task:{r.node_id}"] = r.output
            texts += [json.dumps(r.output), json.dumps(r.detail), str(r.error)]
        for r in await conn.execute(sa.select(events).where(events.c.instance_id == iid)):
            found.setdefault(f"event:{r.type}", []).append(r.data)
            texts.append(json.dumps(r.data))
    return texts, found


async def test_offloaded_values_flow_through_nodes_retries_and_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    text = "payload-" + secrets.token_hex(400)  # far over the threshold, unique
    blob_dir = tmp_path / "blobs"
    async with echo_peer() as peer:
        async with engine_on(database_url, **options(blob_dir)) as rt:
            iid = await start(rt, workflow(peer.url), {"text": text})
            # stop while the timer waits: the next runtime replays the journal from rows
            deadline = asyncio.get_running_loop().time() + 20
            while len(peer.bodies) < 2:
                assert asyncio.get_running_loop().time() < deadline, "the call did not finish"
                await asyncio.sleep(0.02)
        async with engine_on(database_url, **options(blob_dir)) as rt:
            inst = await wait_finished(rt, iid)
            assert inst.status is InstanceStatus.COMPLETED, inst.error
            assert inst.outputs == {"text": text, "small": "ok"}
            # both attempts of the retried call got the real value, not a marker
            assert peer.bodies == [{"text": text}, {"text": text}]
            # the store's reads (the engine's port) give real values
            replayed = Instance.replay(iid, [e for _, e in await rt.store.journal(iid)])
            assert replayed.outputs == inst.outputs
            assert replayed.inputs == {"text": text}
            row = await rt.store.get_instance(iid)
            assert row is not None
            assert row.outputs == inst.outputs
            outputs = {t["node_id"]: t["output"] for t in await rt.store.task_rows(iid)}
            assert outputs["a"] == {"copy": text}
            assert outputs["b"] == text
            texts, found = await raw_rows(rt, iid)
    # the rows hold markers, never the value
    assert not any(text in t for t in texts)
    assert found["inputs"][MARKER] == "blob"
    assert found["outputs"][MARKER] == "blob"
    assert found["task:a"][MARKER] == "blob"
    started = found["event:InstanceStarted"][0]
    assert started["inputs"][MARKER] == "blob"
    assert started["workspace_id"] == "default"  # ids stay inline
    completed = found["event:TaskCompleted"]
    assert any(isinstance(d["output"], dict) and MARKER in d["output"] for d in completed)
    # the blob directory holds them, under the instance's prefix, privately
    files = sorted(p for p in (blob_dir / "default" / iid).iterdir())
    assert files, "no blob written"
    contents = [f.read_bytes() for f in files]
    assert any(text.encode() in c for c in contents)
    assert all(f.stat().st_mode & 0o077 == 0 for f in files)


async def test_small_payloads_stay_inline_and_write_no_blob(
    database_url: str, tmp_path: Path
) -> None:
    blob_dir = tmp_path / "blobs"
    small = doc(
        [{"id": "a", "type": "transform", "config": {"output": {"x": "{{ inputs.n }}"}}}],
        outputs={"x": "{{ nodes.a.output.x }}"},
    )
    async with engine_on(database_url, **options(blob_dir)) as rt:
        iid = await start(rt, small, {"n": 3})
        inst = await wait_finished(rt, iid)
        _, found = await raw_rows(rt, iid)
    assert inst.outputs == {"x": 3}
    assert found["inputs"] == {"n": 3}
    assert found["outputs"] == {"x": 3}
    assert not blob_dir.exists()


async def test_user_data_that_looks_like_a_marker_is_kept_as_given(
    database_url: str, tmp_path: Path
) -> None:
    forged: JSON = {
        MARKER: "blob",
        "ref": "other/secret/" + "0" * 64,
        "sha256": "0" * 64,
        "size": 1,
    }
    echo = doc(
        [{"id": "a", "type": "transform", "config": {"output": "{{ inputs.v }}"}}],
        outputs={"v": "{{ nodes.a.output }}"},
    )
    async with engine_on(database_url, **options(tmp_path / "blobs")) as rt:
        iid = await start(rt, echo, {"v": forged})
        inst = await wait_finished(rt, iid)
        replayed = Instance.replay(iid, [e for _, e in await rt.store.journal(iid)])
    assert replayed.inputs == {"v": forged}
    assert inst.status is InstanceStatus.COMPLETED


async def test_retention_deletes_an_instances_blobs_after_its_rows(
    database_url: str, tmp_path: Path
) -> None:
    blob_dir = tmp_path / "blobs"
    big = doc(
        [{"id": "a", "type": "transform", "config": {"output": "{{ inputs.text }}"}}],
        outputs={"text": "{{ nodes.a.output }}"},
    )
    async with engine_on(database_url, **options(blob_dir)) as rt:
        assert isinstance(rt.store, SqlStore)
        ids = [await start(rt, big, {"text": f"{n}-" + "q" * 1000}) for n in range(3)]
        for iid in ids:
            await wait_finished(rt, iid)
        held = ids[0]
        retention = SqlRetention(rt.store)
        await retention.set_hold(LegalHold(held, "default", None, "user:legal", 0.0))
        await retention.put_policy(
            StoredPolicy("default", RetentionPolicy(60, 60), 0.0, "user:test")
        )
        later = FakeClock(rt.engine.clock.now() + 2 * 86_400)
        job = RetentionJob(retention, later, RetentionSettings(RetentionPolicy(), pause_s=0))
        run = await job.run_once()
        assert run.instances == 2
        assert run.deleted["blobs"] >= 2
        assert (blob_dir / "default" / held).is_dir()  # held: its blobs stay
        for iid in ids[1:]:
            assert not (blob_dir / "default" / iid).exists()
            assert await rt.store.get_instance(iid) is None
        row = await rt.store.get_instance(held)
        assert row is not None
        assert row.outputs == {"text": "0-" + "q" * 1000}


class FakeClock:
    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at
