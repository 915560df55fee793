"""The external worker protocol over HTTP, end to end: a ``task`` node routed to a worker
agent, completed by ``WorkerClient`` through ``HttpWorkerTransport`` (in this process and in
a separate one)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.api.harness import Client, Reply, Server, serve

from cadenza.application.external import Assignment, AssignmentNotFound
from cadenza.domain.json import JSON
from cadenza.entrypoints.client import TaskRejected, WorkerClient
from cadenza.entrypoints.client_http import HttpWorkerTransport, WorkerApiError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


def is_problem(r: Reply, status: int) -> bool:
    ctype = {k.lower(): v for k, v in r.headers.items()}.get("content-type")
    return r.status == status and ctype == "application/problem+json"


def summarizer() -> dict[str, Any]:
    """A process whose one node hands ``inputs.text`` to a worker with ``summarize``."""
    node: dict[str, Any] = {
        "id": "summarize",
        "type": "task",
        "requires": ["summarize"],
        "timeout": "20s",
        "config": {
            "agent_type": "worker",
            "input": {"text": "{{ inputs.text }}"},
            "instructions": "one line",
        },
    }
    return {
        "schema": "cadenza/v1",
        "id": "summarizer",
        "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
        "nodes": [node],
        "outputs": {"summary": "{{ nodes.summarize.output.result.summary }}"},
    }


async def setup(srv: Server) -> tuple[str, str]:
    """(worker agent id, an operator's API key) with the summarizer published."""
    c = srv.admin
    agent = await c.post(
        "/api/v1/agents/register",
        {"name": "py-worker", "type": "worker", "capabilities": ["summarize"], "capacity": 2},
    )
    assert agent.status == 201, agent.body
    saved = await c.post(
        "/api/v1/processes/definitions", {"document": summarizer(), "publish": True}
    )
    assert saved.status == 201, saved.body
    key = await c.post("/api/v1/api-keys", {"name": "worker", "role": "operator"})
    return agent.body["id"], key.body["secret"]


async def finished(c: Client, instance_id: str, timeout_s: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            r = await c.get(f"/api/v1/processes/instances/{instance_id}")
            if r.body["status"] in ("completed", "failed", "cancelled"):
                body: dict[str, Any] = r.body
                return body
            await asyncio.sleep(0.05)


async def start(c: Client, text: str) -> str:
    r = await c.post(
        "/api/v1/processes/instances", {"process_id": "summarizer", "inputs": {"text": text}}
    )
    assert r.status == 201, r.body
    instance_id: str = r.body["id"]
    return instance_id


async def test_worker_client_over_http_completes_and_fails_tasks(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        agent_id, secret = await setup(srv)
        seen: list[Assignment] = []

        async def handle(assignment: Assignment) -> JSON:
            seen.append(assignment)
            if assignment.input == {"text": "bad"}:
                raise TaskRejected("cannot summarize that")
            return {"summary": f"short: {assignment.input}"}

        async with HttpWorkerTransport(srv.base, secret) as transport:
            client = WorkerClient(transport, agent_id, poll_timeout_s=2, concurrency=2)
            running = asyncio.create_task(client.run(handle))
            try:
                done = await finished(srv.admin, await start(srv.admin, "hello"))
                assert done["status"] == "completed", done
                assert done["outputs"] == {"summary": "short: {'text': 'hello'}"}
                failed = await finished(srv.admin, await start(srv.admin, "bad"))
                assert failed["status"] == "failed"
                assert "cannot summarize that" in str(failed["error"])
            finally:
                client.stop()
                await asyncio.wait_for(running, 10)
            assert seen[0].instructions == "one line"
            assert seen[0].requires == ("summarize",)
            assert seen[0].idempotency_key
            with pytest.raises(AssignmentNotFound):
                await transport.complete(seen[0].id, "late")
        agent = await srv.admin.get(f"/api/v1/agents/{agent_id}")
        assert agent.body["status"] == "healthy"  # polling is a heartbeat
        assert agent.body["outstanding"] == 0


async def test_a_separate_worker_process_completes_a_task(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        agent_id, secret = await setup(srv)
        script = textwrap.dedent(
            """
            import asyncio, sys
            from cadenza.entrypoints.client import WorkerClient
            from cadenza.entrypoints.client_http import HttpWorkerTransport

            async def handle(assignment):
                return {"summary": assignment.input["text"].upper()}

            async def main(base, key, agent_id):
                async with HttpWorkerTransport(base, key) as transport:
                    client = WorkerClient(transport, agent_id, poll_timeout_s=2)
                    while not await client.run_once(handle):
                        pass

            asyncio.run(main(*sys.argv[1:]))
            """
        )
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, srv.base, secret, agent_id, cwd=REPO
        )
        try:
            done = await finished(srv.admin, await start(srv.admin, "from afar"), 30)
            assert done["status"] == "completed", done
            assert done["outputs"] == {"summary": "FROM AFAR"}
            assert await asyncio.wait_for(worker.wait(), 10) == 0
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()


async def test_poll_answers_204_when_nothing_arrives_and_checks_its_input(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url) as srv:
        agent_id, secret = await setup(srv)
        operator = srv.admin.as_(secret)
        empty = await operator.post(
            "/api/v1/workers/poll", {"agent_id": agent_id, "timeout_s": 0.1}
        )
        assert empty.status == 204
        assert empty.body == ""
        too_long = await operator.post(
            "/api/v1/workers/poll", {"agent_id": agent_id, "timeout_s": 31}
        )
        assert is_problem(too_long, 422)
        assert too_long.body["errors"][0]["path"] == "body.timeout_s"
        unknown = await operator.post("/api/v1/workers/poll", {"agent_id": "nope", "timeout_s": 0})
        assert is_problem(unknown, 404)
        llm = await srv.admin.post(
            "/api/v1/agents/register",
            {"name": "gpt", "type": "llm", "config": {"provider": "offline", "model": "m"}},
        )
        not_worker = await operator.post(
            "/api/v1/workers/poll", {"agent_id": llm.body["id"], "timeout_s": 0}
        )
        assert is_problem(not_worker, 422)
        for verb, body in [("complete", {"output": 1}), ("fail", {"error": "x"})]:
            r = await operator.post(f"/api/v1/workers/assignments/nope/{verb}", body)
            assert is_problem(r, 404), verb
        assert is_problem(await operator.post("/api/v1/workers/assignments/a/fail", {}), 422)

        viewer_key = await srv.admin.post("/api/v1/api-keys", {"name": "v", "role": "viewer"})
        viewer = srv.admin.as_(viewer_key.body["secret"])
        assert is_problem(await viewer.post("/api/v1/workers/poll", {"agent_id": agent_id}), 403)
        refused = HttpWorkerTransport(srv.base, viewer_key.body["secret"])
        try:
            with pytest.raises(WorkerApiError) as raised:
                await refused.poll(agent_id, None, 0)
            assert raised.value.status == 403
        finally:
            await refused.aclose()


async def test_an_abandoned_poll_does_not_swallow_the_next_assignment(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        agent_id, secret = await setup(srv)
        headers = {"Authorization": f"Bearer {secret}"}
        with pytest.raises(TimeoutError):
            await srv.admin.session.post(
                srv.base + "/api/v1/workers/poll",
                json={"agent_id": agent_id, "timeout_s": 10},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=0.3),
            )
        await asyncio.sleep(0.2)  # the server notices the disconnect and stops that poll
        instance_id = await start(srv.admin, "still there")
        async with HttpWorkerTransport(srv.base, secret) as transport:
            assignment = await transport.poll(agent_id, None, 5)
            assert assignment is not None
            assert assignment.input == {"text": "still there"}
            await transport.complete(assignment.id, {"summary": "ok"})
        done = await finished(srv.admin, instance_id)
        assert done["outputs"] == {"summary": "ok"}
