"""The MCP proxy is SIGKILLed while a ``tool`` node's call is in flight through it.

The upstream tool (``gate`` of the in-repo test server, over HTTP so it outlives the proxy)
logs each call and then blocks until the test creates a file: the kill lands while the first
attempt is provably in flight, with no sleep involved. The worker (this process's engine,
with ``mcp_proxy_url``) sees the call fail as retryable (the tool is read-only), keeps
retrying while the proxy is down (nothing is sent then), and the attempt after the restart
completes. The journal must hold exactly one TaskCompleted for the task.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.integration.engine_harness import doc, engine_on, start
from tests.integration.mcp_proxy_harness import TOKEN, ProxyProcess, calls, http_upstream

from cadenza.domain import events as ev

pytestmark = pytest.mark.slow

FINISH_TIMEOUT_S = 120.0
# Retries while the proxy is down fail at once (connection refused); 100 attempts backing off
# from 100 ms to 1 s cover far more than a proxy restart.
RETRY = {"max_attempts": 100, "backoff": "exponential", "initial": "100ms", "max": "1s"}


async def _until_called(log: Path, times: int) -> None:
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while len(calls(log, "gate")) < times:
        assert time.monotonic() < deadline, "the upstream tool was never called"
        await asyncio.sleep(0.02)


async def test_proxy_killed_mid_call_loses_no_journaled_result(tmp_path: Path) -> None:
    log, gate = tmp_path / "calls.jsonl", tmp_path / "gate"
    definition = doc(
        [
            {
                "id": "wait",
                "type": "tool",
                "config": {"server": "up", "tool": "gate"},
                "retry": RETRY,
            }
        ],
        outputs={"answer": "{{ nodes.wait.output.content }}"},
    )
    with http_upstream(log, gate) as upstream:
        proxy = ProxyProcess([{"name": "up", "url": upstream}])
        await asyncio.to_thread(proxy.start)
        try:
            url = f"sqlite:///{tmp_path}/c.db"
            async with engine_on(url, mcp_proxy_url=proxy.url, mcp_proxy_token=TOKEN) as rt:
                iid = await start(rt, definition)
                await _until_called(log, 1)  # the first attempt is in flight upstream
                proxy.kill()
                await asyncio.to_thread(proxy.start)
                gate.touch()
                inst = await asyncio.wait_for(rt.engine.wait_finished(iid), FINISH_TIMEOUT_S)
                journal = [e for _, e in await rt.store.journal(iid)]
        finally:
            proxy.stop()
    assert inst.status.value == "completed", inst.error
    assert inst.outputs == {"answer": "opened"}
    task_id = inst.tasks[inst.by_key[("", "wait")]].id
    of_task = [e for e in journal if getattr(e, "task_id", None) == task_id]
    completed = [e for e in of_task if isinstance(e, ev.TaskCompleted)]
    assert len(completed) == 1
    assert not [e for e in of_task if isinstance(e, ev.TaskFailed)]
    retries = [e for e in of_task if isinstance(e, ev.TaskRetryScheduled)]
    assert retries, "the attempt in flight at the kill was not retried"
    assert completed[0].attempt == retries[-1].attempt
    upstream_keys = [c["idempotency_key"] for c in calls(log, "gate")]
    assert len(upstream_keys) == 2  # the killed attempt and the one that completed
    assert upstream_keys[0] != upstream_keys[1]  # two attempts, two keys
