"""llm and agent nodes in the real engine: offline provider, mcp-server-time over stdio."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.integration.engine_harness import engine_on, run

from cadenza.infrastructure.documents import read_document
from cadenza.settings import McpServerSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _time_server() -> McpServerSettings:
    found = shutil.which("mcp-server-time") or str(
        Path(sys.executable).with_name("mcp-server-time")
    )
    return McpServerSettings(name="time", command=found)


async def test_triage_example_runs_offline_with_a_real_mcp_server(database_url: str) -> None:
    doc = read_document(EXAMPLES / "ai-triage.yaml")
    async with engine_on(database_url, mcp_servers=[_time_server()]) as rt:
        inst = await run(rt, doc, {"ticket": "The invoice page crashes", "timezone": "UTC"}, 60)
        journal = [e for _, e in await rt.store.journal(inst.id)]
        rows = {r["node_id"]: r for r in await rt.store.task_rows(inst.id)}
    assert inst.status.value == "completed", inst.error
    assert inst.outputs is not None
    assert inst.outputs["label"] in ("bug", "billing", "other")
    assert "[offline]" in str(inst.outputs["reply"])
    steps = [e.data()["step"] for e in journal if e.type_name == "TaskStepRecorded"]
    kinds = [s["kind"] for s in steps if isinstance(s, dict)]
    assert kinds == ["model", "tool", "model"]
    tool_step = steps[1]
    assert isinstance(tool_step, dict)
    assert "UTC" in str(tool_step["result"])  # the real server answered
    usage = rows["draft"]["usage"]
    assert isinstance(usage, dict)
    assert usage["calls"] == 2
    assert isinstance(usage["prompt_tokens"], int)
    assert usage["prompt_tokens"] > 0


async def test_streamed_tokens_reach_listeners_live_and_are_not_journaled(tmp_path: Path) -> None:
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.integration.engine_harness import doc

    from cadenza.domain.events import Event, TaskTokens
    from cadenza.settings import ProviderSettings

    live: list[TaskTokens] = []

    def listen(events: list[tuple[int, Event]]) -> None:
        live.extend(e for seq, e in events if isinstance(e, TaskTokens) and seq == 0)

    d = doc(
        [{"id": "say", "type": "llm", "config": {"prompt": "hello there", "stream": True}}],
        outputs={"text": "{{ nodes.say.output.text }}"},
    )
    async with FakeOpenAIServer() as model:
        provider = ProviderSettings(name="local", base_url=model.base_url, default_model="m")
        url = f"sqlite:///{tmp_path}/c.db"
        async with engine_on(url, providers=[provider], default_provider="local") as rt:
            rt.engine.subscribe(listen)
            inst = await run(rt, d)
            journal = [e.type_name for _, e in await rt.store.journal(inst.id)]
    assert inst.outputs is not None
    text = inst.outputs["text"]
    assert isinstance(text, str)
    assert text
    assert len(live) > 1  # token by token
    assert "".join(t.text for t in live) == text
    assert "TaskTokens" not in journal


async def test_destructive_tools_wait_for_an_approval_when_required(tmp_path: Path) -> None:
    import asyncio

    from tests.integration.engine_harness import doc, start

    from cadenza.domain.commands import SignalTask

    log = tmp_path / "calls.jsonl"
    server = McpServerSettings(
        name="t",
        command=sys.executable,
        args=[
            str(Path(__file__).parents[1] / "fakes" / "mcp_test_server.py"),
            "--transport",
            "stdio",
        ],
        env={"MCP_TEST_LOG": str(log)},
    )
    delete = {"server": "t", "tool": "delete_item", "arguments": {"item_id": "42"}}
    unapproved = doc(
        [
            {
                "id": "look",
                "type": "tool",
                "config": {"server": "t", "tool": "echo", "arguments": {"text": "hi"}},
            },
            {"id": "rm", "type": "tool", "config": delete},
        ],
        [{"from": "look", "to": "rm"}],
        id="unapproved",
    )
    approved = doc(
        [
            {"id": "ask", "type": "approval", "config": {"title": "Delete 42?"}},
            {"id": "rm", "type": "tool", "config": {**delete, "approved_by": "ask"}},
        ],
        [{"from": "ask", "to": "rm"}],
        id="approved",
    )
    url = f"sqlite:///{tmp_path}/c.db"
    async with engine_on(url, mcp_servers=[server], approve_destructive_tools=True) as rt:
        inst = await run(rt, unapproved, timeout=60)
        assert inst.status.value == "failed"
        assert "delete_item is destructive and approvals are required" in (inst.error or "")
        assert inst.tasks[inst.by_key[("", "look")]].status.value == "completed"  # read-only ran
        assert not log.exists()
        iid = await start(rt, approved)
        for _ in range(200):
            rows = {r["node_id"]: r for r in await rt.store.task_rows(iid)}
            if rows.get("ask", {}).get("status") == "waiting":
                break
            await asyncio.sleep(0.02)
        await rt.engine.submit(SignalTask(iid, str(rows["ask"]["id"]), {"decision": "approve"}))
        done = await asyncio.wait_for(rt.engine.wait_finished(iid), 60)
    assert done.status.value == "completed", done.error
    assert '"item_id": "42"' in log.read_text()
