"""The agent registry end to end: the SQL repository, health checks, external workers and the
``task`` node against real peers (a local aiohttp server through the egress guard)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from cadenza.application.agent_definitions import AgentConflict, AgentNotFound
from cadenza.application.agents import AgentRegistry
from cadenza.application.external import Assignment, AssignmentNotFound, ExternalWorkers
from cadenza.application.health import HealthChecker, http_check
from cadenza.application.nodes.task import TaskExecutor, _wait_budget
from cadenza.application.ports_ai import (
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ToolInfo,
    ToolResult,
    Usage,
)
from cadenza.application.ports_nodes import NodeCall, NodeFailure
from cadenza.application.providers import Providers
from cadenza.domain.agent import Agent, AgentEvent, AgentStatus, AgentStatusChanged, AgentType
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON, JSONObject
from cadenza.entrypoints.client import TaskRejected, WorkerClient
from cadenza.infrastructure.agents_memory import MemoryAgentRepository
from cadenza.infrastructure.assignments_memory import MemoryAssignments
from cadenza.infrastructure.egress import Egress, EgressPolicy
from cadenza.infrastructure.sql.agents import SqlAgentRepository
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.templating import JinjaTemplates


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"id{next(counter):04d}"


def memory_registry(clock: FakeClock | None = None) -> AgentRegistry:
    return AgentRegistry(MemoryAgentRepository(), clock or FakeClock(), ids())


# ---- fakes at the AI ports -----------------------------------------------------------------
class EchoProvider:
    name = "echo"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest, on_token: object = None) -> ChatResponse:
        self.requests.append(request)
        text = f"echo: {request.messages[-1].content}"
        return ChatResponse(ChatMessage("assistant", text), Usage(3, 2), request.model, "stop", 0.0)

    async def list_models(self) -> list[str]:
        return ["m1"]

    async def aclose(self) -> None:
        return None


@dataclass
class FakeGateway:
    calls: list[tuple[str, str, JSONObject, str]] = field(default_factory=list)

    async def list_tools(self, server: str) -> list[ToolInfo]:
        return [
            ToolInfo(server, name, "", {"type": "object"}, {"readOnlyHint": True})
            for name in ("summarize", "translate")
        ]

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        self.calls.append((server, name, arguments, idempotency_key))
        return ToolResult(f"{name} done")

    async def ping(self, server: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def task_call(
    requires: tuple[str, ...],
    timeout_s: float = 5.0,
    config: JSONObject | None = None,
    attempt: int = 1,
) -> tuple[NodeCall, list[JSONObject]]:
    recorded: list[JSONObject] = []

    async def record(step: JSONObject) -> None:
        recorded.append(step)

    node = Node("t1", "task", config or {}, requires=requires, timeout_s=timeout_s)
    context = {"inputs": {"text": "hello"}}
    key = f"i1:t1:0:{attempt}"
    return NodeCall("i1", "task1", node, attempt, key, context, record_step=record), recorded


def executor(
    registry: AgentRegistry,
    http: Egress | None = None,
    external: ExternalWorkers | None = None,
    gateway: FakeGateway | None = None,
) -> TaskExecutor:
    providers = Providers({"echo": EchoProvider()}, default="echo")
    return TaskExecutor(
        registry,
        providers,
        gateway or FakeGateway(),
        http or Egress(EgressPolicy(allowed_hosts=frozenset({"127.0.0.1"}))),
        external or ExternalWorkers(registry, ids(), MemoryAssignments(), FakeClock()),
        JinjaTemplates(),
    )


# ---- the SQL repository ----------------------------------------------------------------------
@pytest.fixture
async def sql_registry(database_url: str) -> AsyncIterator[tuple[AgentRegistry, Any]]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        clock = FakeClock()
        yield AgentRegistry(SqlAgentRepository(engine, clock), clock, ids()), engine
    finally:
        await engine.dispose()


async def test_sql_repository_round_trips_register_update_deregister(
    sql_registry: tuple[AgentRegistry, Any],
) -> None:
    registry, engine = sql_registry
    events: list[AgentEvent] = []
    registry.subscribe(events.append)
    llm = await registry.register(
        "writer", AgentType.LLM, ["summarize", "write"], {"provider": "echo", "model": "m1"}, 2
    )
    http = await registry.register(
        "remote", AgentType.HTTP, ["translate"], {"url": "http://127.0.0.1:9/run"}, weight=3
    )
    with pytest.raises(AgentConflict):
        await registry.register("writer", AgentType.WORKER, [], {})
    await registry.update(llm.id, capabilities=["summarize"], capacity=5)
    await registry.set_status(http.id, AgentStatus.HEALTHY, "checked")

    # A second registry on the same database (another process) sees the same agents.
    clock = FakeClock()
    other = AgentRegistry(SqlAgentRepository(engine, clock), clock, ids())
    stored = {a.name: a for a in await other.agents()}
    assert stored["writer"].capabilities == frozenset({"summarize"})
    assert stored["writer"].capacity == 5
    assert stored["writer"].config == {"provider": "echo", "model": "m1"}
    assert stored["remote"].status is AgentStatus.HEALTHY
    assert stored["remote"].weight == 3
    assert stored["remote"].last_seen == 1000.0

    await registry.deregister(llm.id)
    assert [a.name for a in await other.agents()] == ["remote"]
    with pytest.raises(AgentNotFound):
        await registry.get(llm.id)
    assert [type(e).__name__ for e in events] == [
        "AgentRegistered",
        "AgentRegistered",
        "AgentUpdated",
        "AgentStatusChanged",
        "AgentDeregistered",
    ]


# ---- health ----------------------------------------------------------------------------------
async def test_health_checker_marks_unhealthy_on_failure_and_healthy_again() -> None:
    clock = FakeClock()
    registry = memory_registry(clock)
    changes: list[AgentStatusChanged] = []
    registry.subscribe(lambda e: changes.append(e) if isinstance(e, AgentStatusChanged) else None)
    mcp = await registry.register("tools", AgentType.MCP, ["x"], {"server": "s"})
    worker = await registry.register("w", AgentType.WORKER, ["x"], {})
    failing = {"now": False, "hang": False}

    async def check(agent: Agent) -> None:
        if failing["hang"]:
            await asyncio.sleep(10)
        if failing["now"]:
            raise ConnectionError("server gone")

    checker = HealthChecker(registry, {AgentType.MCP: check}, clock, interval_s=30, timeout_s=0.05)
    await registry.heartbeat(worker.id)
    assert await checker.check_once() == {mcp.id: AgentStatus.HEALTHY, worker.id: "healthy"}
    failing["now"] = True
    assert (await checker.check_once())[mcp.id] is AgentStatus.UNHEALTHY
    assert "server gone" in changes[-1].reason
    failing["now"] = False
    clock.t += 91  # three intervals without a heartbeat
    assert await checker.check_once() == {mcp.id: "healthy", worker.id: "unhealthy"}
    assert [(c.name, c.status) for c in changes[-2:]] == [("tools", "healthy"), ("w", "unhealthy")]
    failing["hang"] = True
    assert (await checker.check_once())[mcp.id] is AgentStatus.UNHEALTHY
    assert changes[-1].reason == "health check timed out after 0.05s"


async def test_a_heartbeat_during_a_health_round_is_not_overwritten() -> None:
    """The round reads the agents, a first heartbeat lands, then the round records its
    verdict: it must judge by that heartbeat, not by the stale read ("no heartbeat yet")."""
    clock = FakeClock()
    registry = memory_registry(clock)
    worker = await registry.register("w", AgentType.WORKER, ["x"], {})
    read = registry.agents

    async def read_then_heartbeat() -> list[Agent]:
        agents = await read()
        await registry.heartbeat(worker.id)
        return agents

    registry.agents = read_then_heartbeat  # type: ignore[method-assign]
    checker = HealthChecker(registry, {}, clock, interval_s=30)
    assert await checker.check_once() == {worker.id: AgentStatus.HEALTHY}
    assert (await registry.get(worker.id)).status is AgentStatus.HEALTHY


async def test_the_health_loop_checks_a_new_agent_at_once() -> None:
    clock = FakeClock()
    registry = memory_registry(clock)
    checked = asyncio.Event()

    async def check(agent: Agent) -> None:
        checked.set()

    checker = HealthChecker(registry, {AgentType.MCP: check}, clock, interval_s=30)
    loop = asyncio.create_task(checker.run())
    try:
        await asyncio.sleep(0)  # the first (empty) round
        agent = await registry.register("tools", AgentType.MCP, [], {"server": "s"})
        await asyncio.wait_for(checked.wait(), 1)  # not 30 s later
        await asyncio.sleep(0.01)
        assert (await registry.get(agent.id)).status is AgentStatus.HEALTHY
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


# ---- external workers ------------------------------------------------------------------------
async def test_a_task_dispatched_to_a_worker_agent_is_run_by_worker_client() -> None:
    registry = memory_registry()
    worker = await registry.register("py-worker", AgentType.WORKER, ["summarize"], {}, 2)
    external = ExternalWorkers(registry, ids(), MemoryAssignments(), FakeClock())
    task = executor(registry, external=external)
    received: list[Assignment] = []

    async def handle(assignment: Assignment) -> JSON:
        received.append(assignment)
        if assignment.input == {"text": "bad"}:
            raise TaskRejected("cannot summarize that")
        return {"summary": f"short {assignment.input}"}

    client = WorkerClient(external, worker.id, poll_timeout_s=5, concurrency=2)
    running = asyncio.create_task(client.run(handle))
    try:
        call, _ = task_call(("summarize",), config={"instructions": "be brief"})
        result = await task.execute(call)
        assert result.output == {
            "agent": "py-worker",
            "type": "worker",
            "result": {"summary": "short {'text': 'hello'}"},
        }
        assert received[0].idempotency_key == "i1:t1:0:1"
        assert received[0].instructions == "be brief"
        bad, _ = task_call(("summarize",), config={"input": {"text": "bad"}}, attempt=2)
        with pytest.raises(NodeFailure, match="cannot summarize that") as failed:
            await task.execute(bad)
        assert failed.value.retryable is False
        assert (await registry.get(worker.id)).outstanding == 0
    finally:
        client.stop()
        await asyncio.wait_for(running, 5)
    with pytest.raises(AssignmentNotFound):
        await external.complete(received[0].id, "late")


async def test_poll_returns_none_when_nothing_arrives_in_time() -> None:
    registry = memory_registry()
    worker = await registry.register("w", AgentType.WORKER, [], {})
    external = ExternalWorkers(registry, ids(), MemoryAssignments(), FakeClock())
    assert await external.poll(worker.id, None, 0.05) is None
    assert (await registry.get(worker.id)).status is AgentStatus.HEALTHY  # polling is a heartbeat


# ---- the task node ---------------------------------------------------------------------------
async def test_task_waits_then_fails_clearly_when_no_agent_is_available() -> None:
    registry = memory_registry()
    await registry.register("sleepy", AgentType.WORKER, ["summarize"], {})  # never checked
    call, recorded = task_call(("summarize", "translate"), timeout_s=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(NodeFailure) as failed:
        await executor(registry).execute(call)
    waited = asyncio.get_running_loop().time() - started
    message = str(failed.value)
    assert message.startswith("no available agent with capabilities [summarize, translate]")
    assert "(1 registered, reasons: sleepy: lacks [translate])" in message
    assert failed.value.retryable is False
    # it waits until its budget is spent (never early; how late depends on the machine's load)
    assert waited >= _wait_budget(0.5) - 0.01
    assert _wait_budget(0.5) == pytest.approx(0.45)  # gives up before the worker's own timeout
    assert _wait_budget(60.0) == 59.0  # at most a second before it
    assert recorded == [{"kind": "waiting", "reason": message}]


async def test_a_waiting_task_takes_an_agent_that_becomes_healthy() -> None:
    registry = memory_registry()
    agent = await registry.register(
        "writer", AgentType.LLM, ["summarize"], {"provider": "echo", "model": "m1"}
    )
    call, recorded = task_call(("summarize",), timeout_s=5, config={"input": "{{ inputs.text }}"})
    running = asyncio.create_task(executor(registry).execute(call))
    await asyncio.sleep(0.05)
    assert recorded
    assert "writer: unknown" in str(recorded[0]["reason"])
    await registry.set_status(agent.id, AgentStatus.HEALTHY)
    result = await asyncio.wait_for(running, 1)
    assert result.output == {"agent": "writer", "type": "llm", "result": "echo: hello"}
    assert result.usage["prompt_tokens"] == 3


async def test_an_mcp_agent_calls_the_tool_named_by_a_required_capability() -> None:
    registry = memory_registry()
    agent = await registry.register("tools", AgentType.MCP, ["translate"], {"server": "s"})
    await registry.set_status(agent.id, AgentStatus.HEALTHY)
    gateway = FakeGateway()
    call, _ = task_call(("translate",))
    result = await executor(registry, gateway=gateway).execute(call)
    assert result.output == {"agent": "tools", "type": "mcp", "result": "translate done"}
    assert gateway.calls == [("s", "translate", {"input": {"text": "hello"}}, "i1:t1:0:1")]


@pytest.fixture
async def remote_agent() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def run(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"headers": dict(request.headers), "body": body})
        return web.json_response({"translated": body["input"]["text"].upper()})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/run", run)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_task_picks_a_healthy_http_agent_through_the_egress_guard(
    remote_agent: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = remote_agent
    clock = FakeClock()
    registry = memory_registry(clock)
    await registry.register("down", AgentType.HTTP, ["translate"], {"url": "http://127.0.0.1:1/"})
    up = await registry.register("remote", AgentType.HTTP, ["translate"], {"url": f"{base}/run"})
    egress = Egress(EgressPolicy(allowed_hosts=frozenset({"127.0.0.1"})))
    try:
        checker = HealthChecker(registry, {AgentType.HTTP: http_check(egress)}, clock)
        statuses = await checker.check_once()
        assert statuses[up.id] is AgentStatus.HEALTHY
        assert AgentStatus.UNHEALTHY in statuses.values()  # nothing listens on port 1
        call, _ = task_call(("translate",), config={"strategy": "round_robin"})
        result = await executor(registry, egress).execute(call)
    finally:
        await egress.aclose()
    assert result.output == {"agent": "remote", "type": "http", "result": {"translated": "HELLO"}}
    assert seen[0]["body"] == {"input": {"text": "hello"}, "idempotency_key": "i1:t1:0:1"}
    assert seen[0]["headers"]["Idempotency-Key"] == "i1:t1:0:1"
    remote = await registry.get(up.id)
    assert remote.outstanding == 0
    assert remote.response_ms is not None


async def test_agent_names_are_unique_per_workspace_not_server_wide(
    sql_registry: tuple[AgentRegistry, Any],
) -> None:
    """Security regression (issue 9, Low): a server-wide unique name told workspace B, by a
    409, that workspace A had an agent of that name. Now names clash only within what one
    workspace sees: its own agents and the shared ones."""
    for registry in (sql_registry[0], memory_registry()):
        await check_name_rules(registry)


async def check_name_rules(registry: AgentRegistry) -> None:
    a_bot = await registry.register("bot", AgentType.WORKER, [], {}, workspace_id="ws-a")
    b_bot = await registry.register("bot", AgentType.WORKER, [], {}, workspace_id="ws-b")
    assert a_bot.id != b_bot.id
    with pytest.raises(AgentConflict, match="an agent of this workspace or a shared agent"):
        await registry.register("bot", AgentType.WORKER, [], {}, workspace_id="ws-a")

    await registry.register("helper", AgentType.WORKER, [], {})  # shared
    with pytest.raises(AgentConflict, match=r"^a shared agent is already named 'helper'$"):
        await registry.register("helper", AgentType.WORKER, [], {})
    with pytest.raises(AgentConflict):  # shared names are listed in every workspace
        await registry.register("helper", AgentType.WORKER, [], {}, workspace_id="ws-a")
    with pytest.raises(AgentConflict):
        await registry.update(b_bot.id, name="helper")
    await registry.update(b_bot.id, name="bot-2")
    with pytest.raises(AgentConflict):
        await registry.register("bot-2", AgentType.WORKER, [], {}, workspace_id="ws-b")
    await registry.register("bot-2", AgentType.WORKER, [], {}, workspace_id="ws-a")
    # a shared agent may take a name some workspace uses for its own agent
    await registry.register("bot", AgentType.WORKER, [], {})
    names = sorted((a.name, a.workspace_id or "") for a in await registry.agents())
    assert names == [
        ("bot", ""),
        ("bot", "ws-a"),
        ("bot-2", "ws-a"),
        ("bot-2", "ws-b"),
        ("helper", ""),
    ]


async def test_migration_keeps_agents_and_scopes_their_names(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from cadenza.infrastructure.sql.database import MIGRATIONS, normalize_url
    from cadenza.infrastructure.sql.tables import agents

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(database_url))
    await asyncio.to_thread(command.upgrade, cfg, "0004")
    engine = create_engine(database_url)
    try:
        row = {
            "id": "old-1",
            "name": "bot",
            "type": "worker",
            "capabilities": [],
            "config": {},
            "capacity": 1,
            "weight": 1,
            "status": "unknown",
            "created_at": 1.0,
            "updated_at": 1.0,
            "workspace_id": "ws-a",
        }
        async with engine.begin() as conn:
            await conn.execute(agents.insert().values(**row))
        await asyncio.to_thread(command.upgrade, cfg, "head")
        clock = FakeClock()
        registry = AgentRegistry(SqlAgentRepository(engine, clock), clock, ids())
        assert [(a.id, a.name) for a in await registry.agents()] == [("old-1", "bot")]
        await registry.register("bot", AgentType.WORKER, [], {}, workspace_id="ws-b")
        with pytest.raises(AgentConflict):
            await registry.register("bot", AgentType.WORKER, [], {}, workspace_id="ws-a")
    finally:
        await engine.dispose()


async def test_a_result_after_the_dispatch_timed_out_is_refused() -> None:
    registry = memory_registry()
    worker = await registry.register("w", AgentType.WORKER, ["summarize"], {})
    external = ExternalWorkers(registry, ids(), MemoryAssignments(), FakeClock())
    polling = asyncio.create_task(external.poll(worker.id, None, 10))
    call, _ = task_call(("summarize",))
    with pytest.raises(NodeFailure, match=r"did not finish within 0\.5s") as failed:
        await external.dispatch(worker, call, {"text": "x"}, None, 0.5)
    assert failed.value.retryable
    taken = await polling  # woken at once by the dispatch in this process
    assert taken is not None
    with pytest.raises(AssignmentNotFound):
        await external.complete(taken.id, "late")
    assert await external.open_assignments() == []


async def test_an_attempt_run_again_after_its_dispatcher_died_gets_the_accepted_result_once() -> (
    None
):
    """A worker process waiting for an external result is killed; another runs the same
    attempt (the same idempotency key) again: it finds the result already accepted, or waits
    for the assignment still taken, instead of queueing the work a second time."""
    registry = memory_registry()
    worker = await registry.register("w", AgentType.WORKER, ["summarize"], {})
    store = MemoryAssignments()
    dead = ExternalWorkers(registry, ids(), store, FakeClock())  # the killed process's
    alive = ExternalWorkers(registry, ids(), store, FakeClock())  # the process taking over
    call, _ = task_call(("summarize",))
    # the dead process queued the attempt and died waiting (no abandon: SIGKILL)
    first = await dead._queue(worker, call, {"text": "x"}, None, 5.0, "")
    taken = await alive.poll(worker.id, None, 1.0)
    assert taken is not None
    assert taken.id == first
    await alive.complete(first, {"done": 1})
    assert (await alive.dispatch(worker, call, {"text": "x"}, None, 5.0)).output == {"done": 1}
    assert await alive.poll(worker.id, None, 0.0) is None  # nothing queued again
    with pytest.raises(AssignmentNotFound):
        await alive.complete(first, {"done": 2})  # and accepted once

    second, _ = task_call(("summarize",), attempt=2)
    queued = await dead._queue(worker, second, {"text": "y"}, None, 5.0, "")
    assert (await alive.poll(worker.id, None, 1.0)) is not None  # taken, not finished yet
    # dispatched before or after the result arrives: the same one result either way
    waiting = asyncio.create_task(alive.dispatch(worker, second, {"text": "y"}, None, 5.0))
    await alive.complete(queued, {"done": 3})
    assert (await asyncio.wait_for(waiting, 5)).output == {"done": 3}
    assert await alive.poll(worker.id, None, 0.0) is None
    assert await alive.open_assignments() == []


async def test_an_attempt_whose_earlier_assignment_was_abandoned_is_queued_anew() -> None:
    registry = memory_registry()
    worker = await registry.register("w", AgentType.WORKER, ["summarize"], {})
    store = MemoryAssignments()
    external = ExternalWorkers(registry, ids(), store, FakeClock())
    call, _ = task_call(("summarize",))
    old = await external._queue(worker, call, {"text": "x"}, None, 5.0, "")
    assert await store.abandon(old, 1.0)
    waiting = asyncio.create_task(external.dispatch(worker, call, {"text": "x"}, None, 5.0))
    taken = await external.poll(worker.id, None, 5.0)
    assert taken is not None
    assert taken.id != old
    await external.complete(taken.id, {"again": True})
    assert (await asyncio.wait_for(waiting, 5)).output == {"again": True}


async def test_two_processes_dispatching_one_attempt_at_once_queue_it_once() -> None:
    """A lease that expired while its task still ran: two workers run the same attempt at
    once; the attempt's assignment id is the same in both, so one queues it, the other waits
    for it, and the external worker's one result answers both."""
    registry = memory_registry()
    worker = await registry.register("w", AgentType.WORKER, ["summarize"], {})
    store = MemoryAssignments()
    one = ExternalWorkers(registry, ids(), store, FakeClock())
    two = ExternalWorkers(registry, ids(), store, FakeClock())
    call, _ = task_call(("summarize",))
    both = asyncio.gather(
        one.dispatch(worker, call, {"text": "x"}, None, 5.0),
        two.dispatch(worker, call, {"text": "x"}, None, 5.0),
    )
    taken = await one.poll(worker.id, None, 5.0)
    assert taken is not None
    await one.complete(taken.id, {"once": True})
    results = await asyncio.wait_for(both, 5)
    assert [r.output for r in results] == [{"once": True}, {"once": True}]
    assert await one.poll(worker.id, None, 0.0) is None
    assert await one.open_assignments() == []
