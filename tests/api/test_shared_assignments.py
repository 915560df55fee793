"""External-worker assignments live in the database: a worker polls and reports to API
process B while the task runs on runtime A (two runtimes on one database, SQLite file and
PostgreSQL); a result is accepted once, a late one is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests.api.harness import Server, serve
from tests.api.test_workers_api import finished, setup, start, summarizer

from cadenza.application.external import AssignmentNotFound
from cadenza.entrypoints.client_http import HttpWorkerTransport


@asynccontextmanager
async def two_processes(database_url: str) -> AsyncIterator[tuple[Server, Server]]:
    """A: engine and API (runs the tasks); B: API only, on the same database."""
    async with serve(database_url) as a, serve(database_url, run_worker=False) as b:
        yield a, b


async def gone_from_open(server: Server, assignment_id: str) -> None:
    async with asyncio.timeout(20):
        while assignment_id in {a.id for a in await server.runtime.external.open_assignments()}:
            await asyncio.sleep(0.02)


async def test_a_worker_served_by_another_api_process_completes_the_task_once(
    database_url: str,
) -> None:
    async with two_processes(database_url) as (a, b):
        agent_id, secret = await setup(a)
        async with HttpWorkerTransport(b.base, secret) as worker:
            assert await worker.poll(agent_id, None, 0) is None  # a heartbeat: healthy now
            instance_id = await start(a.admin, "across")
            assignment = await worker.poll(agent_id, None, 10)
            assert assignment is not None
            assert assignment.instance_id == instance_id
            assert assignment.input == {"text": "across"}
            await worker.complete(assignment.id, {"summary": "from B"})
            with pytest.raises(AssignmentNotFound):  # accepted once
                await worker.complete(assignment.id, {"summary": "again"})
            async with HttpWorkerTransport(a.base, secret) as other:
                with pytest.raises(AssignmentNotFound):
                    await other.fail(assignment.id, "too late")
        done = await finished(b.admin, instance_id)
        assert done["status"] == "completed", done
        assert done["outputs"] == {"summary": "from B"}
        [task] = [t for t in done["tasks"] if t["node_id"] == "summarize"]
        assert task["attempt"] == 1


def hasty() -> dict[str, Any]:
    """The summarizer with a 1 s node timeout and no retry."""
    doc = summarizer()
    doc["id"] = "hasty"
    doc["nodes"][0]["timeout"] = "1s"
    return doc


async def test_a_result_after_the_task_stopped_waiting_is_refused(database_url: str) -> None:
    async with two_processes(database_url) as (a, b):
        agent_id, secret = await setup(a)
        async with HttpWorkerTransport(b.base, secret) as worker:
            assert await worker.poll(agent_id, None, 0) is None
            instance_id = await start(a.admin, "x")
            assignment = await worker.poll(agent_id, None, 10)
            assert assignment is not None
            # the instance is cancelled on A, whose task stops waiting: abandoned
            cancelled = await a.admin.post(f"/api/v1/processes/instances/{instance_id}/cancel")
            assert cancelled.status == 200, cancelled.body
            await gone_from_open(b, assignment.id)
            with pytest.raises(AssignmentNotFound):
                await worker.complete(assignment.id, {"summary": "late"})
            assert await worker.poll(agent_id, None, 0) is None  # nothing left to take
        done = await finished(b.admin, instance_id)
        assert done["status"] == "cancelled"


async def test_an_assignment_nobody_takes_times_out_and_is_abandoned(database_url: str) -> None:
    async with two_processes(database_url) as (a, b):
        agent_id, secret = await setup(a)
        await a.admin.post("/api/v1/processes/definitions", {"document": hasty(), "publish": True})
        async with HttpWorkerTransport(b.base, secret) as worker:
            assert await worker.poll(agent_id, None, 0) is None
        r = await b.admin.post(
            "/api/v1/processes/instances", {"process_id": "hasty", "inputs": {"text": "x"}}
        )
        failed = await finished(b.admin, r.body["id"])
        assert failed["status"] == "failed"
        assert await a.runtime.external.open_assignments() == []
