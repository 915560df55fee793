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

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.openai_server import FakeOpenAIServer
from tests.net import free_port
from tests.pg import backend_url

from cadenza.infrastructure.secrets_crypto import new_key

DEADLINE_S = 120.0  # importing and starting on a loaded machine
PASSWORD = "config-admin-password-1"
KEY = "sk-remote-Pr0vider-key-42"
APPLIED = "runtime configuration applied: provider 'remote'"
REMOVED = "runtime configuration removed: provider 'remote'"
MCP_APPLIED = "runtime configuration applied: mcp_server 'tools'"
MCP_REMOVED = "runtime configuration removed: mcp_server 'tools'"
MCP_SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_test_server.py")
WORKER_RUNNING = re.compile(r"worker \S+ running on ")


def _env(tmp: Path, url: str, bus_url: str) -> dict[str, str]:
    inherited = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    return {
        **inherited,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "CADENZA_DATABASE_URL": url,
        "CADENZA_BUS_URL": bus_url,
        "CADENZA_ADMIN_PASSWORD": PASSWORD,
        "CADENZA_TOKEN_SECRET": "config-token-secret-" + "c" * 32,
        "CADENZA_SECRETS_KEY": new_key(),
        "CADENZA_CONFIG_ALLOWED_HOSTS": '["127.0.0.1"]',
        "CADENZA_CACHE_REFRESH_S": "3600",  # only the bus can tell the worker in time
        "CADENZA_SHUTDOWN_GRACE_S": "0",
        "CADENZA_SWEEP_INTERVAL_S": "0.2",
    }


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", *argv],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


async def _until(what: str, probe: Callable[[], Any], log: Path) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = probe()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        tail = log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S:g} s\n{tail}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _api(session: aiohttp.ClientSession, base: str) -> AsyncIterator[dict[str, str]]:
    body = {"username": "admin", "password": PASSWORD}
    async with session.post(f"{base}/api/v1/auth/login", json=body) as r:
        assert r.status == 200, await r.text()
        token = (await r.json())["access_token"]
    yield {"Authorization": f"Bearer {token}"}


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers=headers) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def _followers(bus_url: str) -> bool:
    """Whether two processes' invalidation groups (``cache-...``) are on the bus's stream."""
    import redis.asyncio as aioredis

    base, _, query = bus_url.partition("?")
    stream = dict(p.split("=", 1) for p in query.split("&"))["stream"]
    client = aioredis.from_url(base)
    try:
        groups = await client.xinfo_groups(stream)
    except aioredis.ResponseError:  # no stream yet: nobody joined
        return False
    finally:
        await client.aclose()
    names = [g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"]) for g in groups]
    return sum(n.startswith("cache-") for n in names) >= 2


def _count(log: Path, line: str) -> int:
    return log.read_text(errors="replace").count(line)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def test_a_provider_saved_through_the_api_is_used_by_a_worker_process_without_restart(
    tmp_path: Path, url: str, redis_bus_url: str
) -> None:
    env = _env(tmp_path, url, redis_bus_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    async with (
        FakeOpenAIServer(models=("model-one", "model-two")) as fake,
        aiohttp.ClientSession() as http,
    ):
        api_argv = ["serve", "--role", "api", "--port", str(port)]
        with _process(api_argv, env, api_log) as api:

            async def healthy() -> bool:
                assert api.poll() is None, api_log.read_text()
                try:
                    async with http.get(f"{base}/health") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await _until("the API answers", healthy, api_log)
            with _process(["worker"], env, worker_log) as worker:
                await _until(
                    "the worker runs",
                    lambda: WORKER_RUNNING.search(worker_log.read_text()),
                    worker_log,
                )
                # both processes follow the bus (a group joins at the stream's end: a change
                # announced before the worker joined would reach it only by its refresh)
                await _until("both follow the bus", lambda: _followers(redis_bus_url), worker_log)
                async with _api(http, base) as auth:
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
    status, saved = await _call(http, "PUT", provider, auth, body)
    assert status == 200, saved
    assert saved["has_api_key"] is True
    assert KEY not in json.dumps(saved)
    await _until("the worker applied it", lambda: _count(worker_log, APPLIED) >= 1, worker_log)

    llm = {"id": "ask", "type": "llm", "config": {"provider": "remote", "prompt": "{{ inputs.q }}"}}
    doc = {
        "schema": "cadenza/v1",
        "id": "ask-remote",
        "name": "Ask remote",
        "inputs": {"type": "object", "properties": {"q": {"type": "string"}}},
        "nodes": [llm],
        "outputs": {"text": "{{ nodes.ask.output.text }}"},
    }
    status, _ = await _call(
        http,
        "POST",
        f"{base}/api/v1/processes/definitions",
        auth,
        {"document": doc, "publish": True},
    )
    assert status == 201

    async def run(question: str, expected: str) -> dict[str, Any]:
        body = {"process_id": "ask-remote", "inputs": {"q": question}}
        status, started = await _call(
            http, "POST", f"{base}/api/v1/processes/instances", auth, body
        )
        assert status == 201, started
        url = f"{base}/api/v1/processes/instances/{started['id']}"

        async def done() -> dict[str, Any] | None:
            _, got = await _call(http, "GET", url, auth)
            return got if got["status"] in ("completed", "failed") else None

        found: dict[str, Any] = await _until(f"instance {question}", done, worker_log)
        assert found["status"] == expected, found
        return found

    def chats() -> list[dict[str, Any]]:
        return [r.body or {} for r in fake.requests if r.path.endswith("/chat/completions")]

    first = await run("first question", "completed")
    assert first["outputs"] == {"text": "echo: first question"}
    assert [c["model"] for c in chats()] == ["model-one"]  # the API runs no tasks: the worker

    body = {**body, "default_model": "model-two"}
    del body["api_key"]  # kept as stored
    status, changed = await _call(http, "PUT", provider, auth, body)
    assert (status, changed["revision"], changed["has_api_key"]) == (200, 2, True)
    await _until("the worker re-applied it", lambda: _count(worker_log, APPLIED) >= 2, worker_log)
    second = await run("second question", "completed")
    assert second["outputs"] == {"text": "echo: second question"}
    assert [c["model"] for c in chats()] == ["model-one", "model-two"]

    status, _ = await _call(http, "DELETE", provider, auth)
    assert status == 204
    await _until("the worker removed it", lambda: _count(worker_log, REMOVED) >= 1, worker_log)
    third = await run("third question", "failed")
    assert "no model provider named 'remote'" in json.dumps(third), third
    assert len(chats()) == 2  # nothing was sent after the delete


async def _run(
    http: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    log: Path,
    process_id: str,
    inputs: dict[str, Any],
    expected: str,
) -> dict[str, Any]:
    """Start an instance and wait until it settles with ``expected``."""
    body = {"process_id": process_id, "inputs": inputs}
    status, started = await _call(http, "POST", f"{base}/api/v1/processes/instances", auth, body)
    assert status == 201, started
    url = f"{base}/api/v1/processes/instances/{started['id']}"

    async def done() -> dict[str, Any] | None:
        _, got = await _call(http, "GET", url, auth)
        return got if got["status"] in ("completed", "failed") else None

    found: dict[str, Any] = await _until(f"instance of {process_id}", done, log)
    assert found["status"] == expected, found
    return found


async def _mcp_scenario(
    http: aiohttp.ClientSession, base: str, auth: dict[str, str], worker_log: Path
) -> None:
    server = f"{base}/api/v1/config/mcp-servers/tools?scope=shared"
    body = {"command": sys.executable, "args": [MCP_SCRIPT, "--transport", "stdio"]}
    status, saved = await _call(http, "PUT", server, auth, body)
    assert status == 200, saved
    await _until("the worker added it", lambda: _count(worker_log, MCP_APPLIED) >= 1, worker_log)
    tool = {"server": "tools", "tool": "echo", "arguments": {"text": "{{ inputs.q }}"}}
    doc = {
        "schema": "cadenza/v1",
        "id": "call-tools",
        "name": "Call tools",
        "inputs": {"type": "object", "properties": {"q": {"type": "string"}}},
        "nodes": [{"id": "call", "type": "tool", "config": tool}],
        "outputs": {"out": "{{ nodes.call.output }}"},
    }
    status, _ = await _call(
        http,
        "POST",
        f"{base}/api/v1/processes/definitions",
        auth,
        {"document": doc, "publish": True},
    )
    assert status == 201
    done = await _run(http, base, auth, worker_log, "call-tools", {"q": "over mcp"}, "completed")
    assert "over mcp" in json.dumps(done["outputs"]), done
    status, _ = await _call(http, "DELETE", server, auth)
    assert status == 204
    await _until("the worker removed it", lambda: _count(worker_log, MCP_REMOVED) >= 1, worker_log)
    gone = await _run(http, base, auth, worker_log, "call-tools", {"q": "again"}, "failed")
    assert "unknown MCP server 'tools'" in json.dumps(gone), gone
