"""What the crash suite runs and checks: one process that reaches every crash point, a side-effect
server that counts requests per Idempotency-Key, an MCP server for the agent's tool, and the
checks that nothing was lost or recorded twice."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from tests.e2e.test_crash_recovery import journal_problems
from tests.net import free_port, post_server, wait_listening

from cadenza.application.context import idempotency_key
from cadenza.bootstrap import build
from cadenza.domain import events as ev
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MCP_SCRIPT = ROOT / "tests" / "fakes" / "mcp_test_server.py"
MCP_START_TIMEOUT_S = 30.0
PROCESS_ID = "crash-points"


# ---- side effects ------------------------------------------------------------------------------
@dataclass
class SideEffects:
    """Answers ``POST /work`` from the payload alone; counts requests per Idempotency-Key."""

    url: str = ""
    requests: Counter[str] = field(default_factory=Counter)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None  # when set up, requests wait for it before answering

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.requests[request.headers.get("Idempotency-Key", "")] += 1
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.json_response({"result": int(payload["value"]) * 10 + int(payload["round"])})


@contextlib.asynccontextmanager
async def side_effect_server() -> AsyncIterator[SideEffects]:
    server = SideEffects()
    async with post_server(server.handle) as server.url:
        yield server


@contextlib.contextmanager
def mcp_server() -> Iterator[str]:
    """The test MCP server over streamable HTTP; its URL once it accepts connections."""
    port = free_port()
    cmd = [sys.executable, str(MCP_SCRIPT), "--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(cmd)
    try:
        wait_listening(proc, port, MCP_START_TIMEOUT_S, "the MCP test server")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---- the process -------------------------------------------------------------------------------
def definition(url: str) -> JSONObject:
    """Transforms, two kinds of ``http`` calls (one inside a map), an agent with one MCP tool
    call: every commit, claim, execution and agent turn passes a crash point."""

    def call(value: str, round_: str) -> JSONObject:
        return {
            "id": "call",
            "type": "http",
            "config": {"method": "POST", "url": url, "json": {"value": value, "round": round_}},
        }

    post = call("{{ inputs.n }}", "0") | {"id": "post"}
    return {
        "schema": "cadenza/v1",
        "id": PROCESS_ID,
        "name": "crash points",
        "inputs": {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "items": {"type": "array"}},
            "required": ["n", "items"],
        },
        "nodes": [
            {
                "id": "prep",
                "type": "transform",
                "config": {"output": {"sq": "{{ inputs.n ** 2 }}"}},
            },
            post,
            {
                "id": "each",
                "type": "map",
                "config": {
                    "items": "inputs.items",
                    "concurrency": 2,
                    "output": "{{ nodes.call.output.body.result }}:{{ nodes.sq.output }}",
                    "body": {
                        "nodes": [
                            {
                                "id": "sq",
                                "type": "transform",
                                "config": {"output": "{{ item * item }}"},
                            },
                            call("{{ item }}", "{{ index }}"),
                        ],
                        "edges": [{"from": "sq", "to": "call"}],
                    },
                },
            },
            {
                "id": "helper",
                "type": "agent",
                "config": {
                    "instructions": "Help.",
                    "input": "use-tool for {{ inputs.n }}",
                    "tools": [{"server": "t", "names": ["echo"]}],
                    "max_steps": 4,
                },
            },
            {
                "id": "done",
                "type": "transform",
                "config": {
                    "output": "{{ nodes.prep.output.sq }}|{{ nodes.post.output.body.result }}|"
                    "{{ nodes.each.output|join(',') }}|{{ nodes.helper.output.text }}"
                },
            },
        ],
        "edges": [
            {"from": "prep", "to": "post"},
            {"from": "prep", "to": "each"},
            {"from": "prep", "to": "helper"},
            {"from": "post", "to": "done"},
            {"from": "each", "to": "done"},
            {"from": "helper", "to": "done"},
        ],
        "outputs": {"done": "{{ nodes.done.output }}", "steps": "{{ nodes.helper.output }}"},
    }


def settings(url: str, mcp_url: str, **extra: object) -> dict[str, object]:
    """The settings of every engine in the suite (children and the starter)."""
    return {
        "database_url": url,
        "egress_allowed_hosts": ["127.0.0.1"],
        "sweep_interval_s": 0.05,
        "mcp_servers": [{"name": "t", "url": mcp_url}],
        "log_json": False,
        # the suite kills the worker on purpose, often while one innocent task is held through
        # several kills: the poison-task limit would fail it (its own test: test_poison_task.py)
        "task_max_crashes": 0,
        **extra,
    }


async def start_instances(
    config: dict[str, object], doc: JSONObject, jobs: list[JSONObject], *, migrate: bool
) -> list[str]:
    """Publish and start the jobs with an engine that runs no task (``run_worker=False``)."""
    rt = await build(Settings(**config), migrate=migrate, run_worker=False)  # type: ignore[arg-type]
    await rt.engine.start()
    try:
        await rt.definitions.publish(doc)
        ids = [await rt.engine.submit(StartInstance(PROCESS_ID, job)) for job in jobs]
    finally:
        await rt.close()
    return [str(i) for i in ids]


# ---- checks ------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    """The journals of some instances, read between runs."""

    journals: dict[str, list[tuple[int, ev.Event]]]

    @property
    def terminal_events(self) -> int:
        kinds = (ev.TaskCompleted, ev.TaskFailed, ev.TaskSkipped, ev.TaskCancelled)
        return sum(isinstance(e, kinds) for j in self.journals.values() for _, e in j)

    def problems(self, *, finished: bool) -> list[str]:
        """Lost instances, sequence gaps and results recorded twice; once ``finished``, also
        tasks without a result (see ``journal_problems``)."""
        lost = [f"{iid}: no journal" for iid, j in self.journals.items() if not j]
        found = [p for iid, j in self.journals.items() for p in journal_problems(iid, j)]
        if not finished:
            found = [p for p in found if not p.endswith("has 0 terminal events")]
        return lost + found

    def http_keys(self) -> set[str]:
        """The idempotency keys of every recorded ``http`` result."""
        keys: set[str] = set()
        for iid, journal in self.journals.items():
            where = {
                e.task_id: (e.scope, e.node_id)
                for _, e in journal
                if isinstance(e, ev.TaskScheduled) and e.node_type == "http"
            }
            keys |= {
                idempotency_key(iid, *where[e.task_id], e.attempt)
                for _, e in journal
                if isinstance(e, ev.TaskCompleted) and e.task_id in where
            }
        return keys

    def count(self, kind: type[ev.Event]) -> int:
        return sum(isinstance(e, kind) for j in self.journals.values() for _, e in j)


async def snapshot(store: SqlStore, ids: list[str]) -> Snapshot:
    return Snapshot({iid: await store.journal(iid) for iid in ids})


async def outputs(store: SqlStore, ids: list[str]) -> list[tuple[str, JSON]]:
    rows = [await store.get_instance(i) for i in ids]
    return [(r.status, r.outputs) if r is not None else ("lost", None) for r in rows]
