"""SIGKILL in the middle of agent loops: after restarts every loop finishes, and the model
server's log shows no completed model call made again.

The kills are deterministic: each worker runs one task at a time (capacity 1) and is armed with
the ``mid-agent-turn`` crash point, so it SIGKILLs itself right after its first new model turn
that asks for a tool has been journaled, before the tool call. Each of the six loops is cut
there exactly once; the next worker resumes it by replaying the journaled turn."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.e2e.test_crash_recovery import workers
from tests.fakes.openai_server import FakeOpenAIServer

from cadenza.bootstrap import build
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import McpServerSettings, ProviderSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = 6
KILLS = 6  # one per loop: its first model turn asks for a tool
EXIT_TIMEOUT_S = 120.0

AGENT_DOC: JSONObject = {
    "schema": "cadenza/v1",
    "id": "crashy-agent",
    "name": "agent under fire",
    "nodes": [
        {
            "id": "helper",
            "type": "agent",
            "config": {
                "provider": "local",
                "instructions": "Help.",
                "input": "use-tool for {{ inputs.n }}",
                "tools": [{"server": "t", "names": ["echo"]}],
                "max_steps": 4,
            },
        }
    ],
    "outputs": {"text": "{{ nodes.helper.output.text }}"},
}


def _settings(base_url: str) -> dict[str, str]:
    provider = ProviderSettings(name="local", kind="openai", base_url=base_url, default_model="m")
    server = McpServerSettings(
        name="t",
        command=sys.executable,
        args=[str(ROOT / "tests" / "fakes" / "mcp_test_server.py"), "--transport", "stdio"],
    )
    return {
        "providers": json.dumps([provider.model_dump()]),
        "mcp_servers": json.dumps([server.model_dump()]),
    }


async def _start_instances(url: str, base_url: str) -> list[str]:
    env = _settings(base_url)
    settings = Settings(
        database_url=url,
        providers=json.loads(env["providers"]),
        mcp_servers=json.loads(env["mcp_servers"]),
    )
    rt = await build(settings, run_worker=False)
    try:
        stored = await rt.definitions.publish(AGENT_DOC)
        await rt.engine.start()
        ids = [
            await rt.engine.submit(StartInstance(stored.process_id, {"n": n}))
            for n in range(INSTANCES)
        ]
    finally:
        await rt.close()
    return [str(i) for i in ids]


@pytest.mark.slow
async def test_killed_agent_loops_resume_without_repeating_completed_calls(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    async with FakeOpenAIServer() as model:
        ids = await _start_instances(url, model.base_url)
        env = _settings(model.base_url) | {"capacity": "1"}
        kills = 0
        async with workers(url, tmp_path) as pool:
            for _ in range(KILLS):
                w = await pool.spawn("agent-worker", failpoints="mid-agent-turn:1", **env)
                assert await asyncio.wait_for(pool.exited(w), EXIT_TIMEOUT_S) == -signal.SIGKILL
                assert "failpoint mid-agent-turn triggered (pass 1)" in w.lines, w.tail()
                kills += 1
            final = await pool.spawn("agent-worker", **env)
            await pool.until_ready(final)
            store = SqlStore(create_engine(url))
            try:
                for _ in range(600):
                    rows = [await store.get_instance(i) for i in ids]
                    if all(r is not None and r.status != "running" for r in rows):
                        break
                    await asyncio.sleep(0.1)
                rows = [await store.get_instance(i) for i in ids]
                recorded: dict[str, float] = {}  # model-call key -> when its step was journaled
                resumed = 0  # loops re-run with journaled steps to replay
                for i in ids:
                    model_steps = 0
                    for _, e in await store.journal(i):
                        if e.type_name == "TaskRequeued" and model_steps:
                            resumed += 1
                        step = e.data().get("step")
                        if isinstance(step, dict) and step.get("kind") == "model":
                            key = f"{i}:helper:0:1:turn{2 + 2 * model_steps}"
                            recorded[key] = e.occurred_at
                            model_steps += 1
            finally:
                await store.close()
            assert await pool.stop(final) == 0
            # the MCP child of a killed worker dies of a broken pipe: its traceback is expected
            ours = [t for t in pool.tracebacks() if "src/cadenza/" in t]
            assert ours == []
    assert all(r is not None and r.status == "completed" for r in rows), [
        (r.status, r.error) for r in rows if r is not None
    ]
    assert all(r is not None and r.outputs and "tool said" in str(r.outputs["text"]) for r in rows)
    epoch_of = time.time() - time.monotonic()  # the fake server logs monotonic times
    chat = [r for r in model.requests if r.path.endswith("/chat/completions")]
    calls = Counter(r.idempotency_key for r in chat)
    assert len(recorded) == 2 * INSTANCES  # two journaled turns per loop
    assert resumed == KILLS  # every loop was cut after a journaled turn and replayed
    assert set(calls) == set(recorded)
    # no kill landed during a model call, so none was made twice ...
    assert set(calls.values()) == {1}, calls
    # ... and none was made after its answer was journaled
    late = [
        r.idempotency_key for r in chat if r.at + epoch_of > recorded[str(r.idempotency_key)] + 0.05
    ]
    assert late == []
