"""A provider added through the API is used by a *different* process without a restart.

Real processes on one database (a SQLite file; PostgreSQL) and one Redis bus:
``cadenza serve --role api`` (runs no tasks) and ``cadenza worker``. A provider stored through
the API, pointing at the local OpenAI-compatible fake, answers an instance the worker runs; a
change of its default model is used by the worker's next instance; after it is deleted the
next instance fails clearly. The same for an MCP server: stored through the API, its tool is
called by the worker; deleted, the next call fails. The worker's configuration refresh
interval is an hour, so only the bus message can have told it. Waits are conditions with
deadlines (the worker's log line saying it applied the change, an instance's status), never
sleeps.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.e2e import config_harness as h
from tests.fakes.openai_server import FakeOpenAIServer
from tests.net import free_port
from tests.pg import backend_url

KEY = "sk-remote-Pr0vider-key-42"
APPLIED = "runtime configuration applied: provider 'remote'"
REMOVED = "runtime configuration removed: provider 'remote'"
MCP_APPLIED = "runtime configuration applied: mcp_server 'tools'"
MCP_REMOVED = "runtime configuration removed: mcp_server 'tools'"
MCP_SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py")
WORKER_RUNNING = re.compile(r"worker \S+ running on ")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def test_a_provider_saved_through_the_api_is_used_by_a_worker_process_without_restart(
    tmp_path: Path, url: str, redis_bus_url: str
) -> None:
    env = h.env(tmp_path, url, redis_bus_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    async with (
        FakeOpenAIServer(models=("model-one", "model-two")) as fake,
        aiohttp.ClientSession() as http,
    ):
        api_argv = ["serve", "--role", "api", "--port", str(port)]
        with h.process(api_argv, env, api_log) as api:

            async def healthy() -> bool:
                assert api.poll() is None, api_log.read_text()
                try:
                    async with http.get(f"{base}/health") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await h.until("the API answers", healthy, api_log)
            with h.process(["worker"], env, worker_log) as worker:
                await h.until(
                    "the worker runs",
                    lambda: WORKER_RUNNING.search(worker_log.read_text()),
                    worker_log,
                )
                # both processes follow the bus (a group joins at the stream's end: a change
                # announced before the worker joined would reach it only by its refresh)
                await h.until("both follow the bus", lambda: h.followers(redis_bus_url), worker_log)
                async with h.api(http, base) as auth:
                    await _scenario(http, base, auth, fake, worker_log)
                    await _mcp_scenario(http, base, auth, worker_log)
                assert worker.poll() is None, "the worker was never restarted"


async def _scenario(
    http: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    fake: FakeOpenAIServer,
    worker_log: Path,
) -> None:
    provider = f"{base}/api/v1/config/providers/remote"
    body = {
        "kind": "openai",
        "base_url": fake.base_url,
        "default_model": "model-one",
        "api_key": KEY,
    }
    status, saved = await h.call(http, "PUT", provider, auth, body)
    assert status == 200, saved
    assert saved["has_api_key"] is True
    assert KEY not in json.dumps(saved)
    await h.until("the worker applied it", lambda: h.count(worker_log, APPLIED) >= 1, worker_log)

    llm = {"id": "ask", "type": "llm", "config": {"provider": "remote", "prompt": "{{ inputs.q }}"}}
    doc = {
        "schema": "cadenza/v1",
        "id": "ask-remote",
        "name": "Ask remote",
        "inputs": {"type": "object", "properties": {"q": {"type": "string"}}},
        "nodes": [llm],
        "outputs": {"text": "{{ nodes.ask.output.text }}"},
    }
    status, _ = await h.call(
        http,
        "POST",
        f"{base}/api/v1/processes/definitions",
        auth,
        {"document": doc, "publish": True},
    )
    assert status == 201

    async def run(question: str, expected: str) -> dict[str, Any]:
        body = {"process_id": "ask-remote", "inputs": {"q": question}}
        status, started = await h.call(
            http, "POST", f"{base}/api/v1/processes/instances", auth, body
        )
        assert status == 201, started
        url = f"{base}/api/v1/processes/instances/{started['id']}"

        async def done() -> dict[str, Any] | None:
            _, got = await h.call(http, "GET", url, auth)
            return got if got["status"] in ("completed", "failed") else None

        found: dict[str, Any] = await h.until(f"instance {question}", done, worker_log)
        assert found["status"] == expected, found
        return found

    def chats() -> list[dict[str, Any]]:
        return [r.body or {} for r in fake.requests if r.path.endswith("/chat/completions")]

    first = await run("first question", "completed")
    assert first["outputs"] == {"text": "echo: first question"}
    assert [c["model"] for c in chats()] == ["model-one"]  # the API runs no tasks: the worker

    body = {**body, "default_model": "model-two"}
    del body["api_key"]  # kept as stored
    status, changed = await h.call(http, "PUT", provider, auth, body)
    assert (status, changed["revision"], changed["has_api_key"]) == (200, 2, True)
    await h.until("the worker re-applied it", lambda: h.count(worker_log, APPLIED) >= 2, worker_log)
    second = await run("second question", "completed")
    assert second["outputs"] == {"text": "echo: second question"}
    assert [c["model"] for c in chats()] == ["model-one", "model-two"]

    status, _ = await h.call(http, "DELETE", provider, auth)
    assert status == 204
    await h.until("the worker removed it", lambda: h.count(worker_log, REMOVED) >= 1, worker_log)
    third = await run("third question", "failed")
    assert "no model provider named 'remote'" in json.dumps(third), third
    assert len(chats()) == 2  # nothing was sent after the delete


async def _mcp_scenario(
    http: aiohttp.ClientSession, base: str, auth: dict[str, str], worker_log: Path
) -> None:
    server = f"{base}/api/v1/config/mcp-servers/tools?scope=shared"
    body = {"command": sys.executable, "args": [MCP_SCRIPT, "--transport", "stdio"]}
    status, saved = await h.call(http, "PUT", server, auth, body)
    assert status == 200, saved
    await h.until("the worker added it", lambda: h.count(worker_log, MCP_APPLIED) >= 1, worker_log)
    tool = {"server": "tools", "tool": "echo", "arguments": {"text": "{{ inputs.q }}"}}
    doc = {
        "schema": "cadenza/v1",
        "id": "call-tools",
        "name": "Call tools",
        "inputs": {"type": "object", "properties": {"q": {"type": "string"}}},
        "nodes": [{"id": "call", "type": "tool", "config": tool}],
        "outputs": {"out": "{{ nodes.call.output }}"},
    }
    status, _ = await h.call(
        http,
        "POST",
        f"{base}/api/v1/processes/definitions",
        auth,
        {"document": doc, "publish": True},
    )
    assert status == 201
    done = await h.run(http, base, auth, worker_log, "call-tools", {"q": "over mcp"}, "completed")
    assert "over mcp" in json.dumps(done["outputs"]), done
    status, _ = await h.call(http, "DELETE", server, auth)
    assert status == 204
    await h.until(
        "the worker removed it", lambda: h.count(worker_log, MCP_REMOVED) >= 1, worker_log
    )
    gone = await h.run(http, base, auth, worker_log, "call-tools", {"q": "again"}, "failed")
    assert "unknown MCP server 'tools'" in json.dumps(gone), gone
