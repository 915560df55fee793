"""Crash recovery with real processes: ``cadenza worker`` is SIGKILLed again and again.

A seeded mix of instances (the runnable examples plus test-only definitions with transform,
condition, map, loop and wait nodes) runs while workers are killed at random moments. Every
instance must still complete with the outputs of a fault-free run, and the journal must show
each task's result recorded once (one terminal event per task, at most one TaskCompleted per
attempt) with gap-free sequence numbers.

``test_single_worker_restarted_after_every_kill`` (SQLite file): one worker identity, restarted
after each kill, so the new process voids its predecessor's leases and re-runs those tasks.

``test_two_workers_one_killed_repeatedly`` (PostgreSQL): a steady worker and a flaky one (another
identity) that is killed again and again; the steady one takes over the flaky one's tasks when
their leases expire. ``http`` nodes call a local server that logs each execution. Criterion for
"no task ran concurrently twice": among the executions whose response was *delivered* (the
calling worker was still connected when the server finished the 100 ms handler), no two with
the same idempotency-key prefix ``instance:node:iteration`` overlap in time. An execution whose
caller was killed mid-request is excluded: re-running it is the promised at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from tests.net import post_server

from cadenza.application.context import idempotency_key
from cadenza.application.definitions import InputsInvalid
from cadenza.bootstrap import build
from cadenza.domain import events as ev
from cadenza.domain.commands import StartInstance
from cadenza.domain.durations import DurationError, parse_duration
from cadenza.domain.errors import DomainError
from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.documents import read_document
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED = 1234
LEASE_S = "2"
SWEEP_INTERVAL_S = "0.2"
READY_TIMEOUT_S = 30.0
REFERENCE_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 120.0
STEADY_CAPACITY = "3"
TERMINAL = (ev.TaskCompleted, ev.TaskFailed, ev.TaskSkipped, ev.TaskCancelled)

# Inputs for the examples; an example not listed gets inputs sampled from its input schema
# and is left out when those do not let it complete in the fault-free run.
EXAMPLE_INPUTS: dict[str, list[JSONObject]] = {
    "fanout-join": [
        {"ticket": "Error when saving the invoice", "tags": ["billing", "ui"]},
        {"ticket": "Please add a dark mode"},
        {"ticket": "ERROR 500 on login", "tags": ["auth", "api", "web"]},
    ],
    "process-orders": [
        {
            "orders": [
                {"id": 1, "qty": 3, "price": 50},
                {"id": 2, "qty": 1, "price": 20},
                {"id": 3, "qty": 10, "price": 15},
                {"id": 4, "qty": 2, "price": 40},
            ]
        },
        {"orders": [{"id": 7, "qty": 1, "price": 5}]},
    ],
    "enrich-order": [{"order": {"id": 9, "qty": 2, "price": 70}}],
    # nobody decides: the 2s approval timeout fails the node and on_error: continue goes on
    "refund-approval": [{"amount": 42, "customer": "ada"}],
}
RUNNABLE = {"start", "end", "transform", "condition", "map", "loop", "wait", "subprocess"}


# ---- workload -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    process_id: str
    inputs: JSONObject
    sampled: bool = False  # inputs guessed from the schema: may be dropped after the reference


@dataclass
class Workload:
    documents: list[JSONObject] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)


def _nodes(nodes: JSON) -> Iterator[JSONObject]:
    for node in nodes if isinstance(nodes, list) else []:
        if isinstance(node, dict):
            yield node
            config = node.get("config")
            body = config.get("body") if isinstance(config, dict) else None
            if isinstance(body, dict):
                yield from _nodes(body.get("nodes"))


def _runs_unattended(doc: JSONObject, known: set[str]) -> bool:
    """Only local node types, short waits, and approvals that time out and continue."""
    for node in _nodes(doc.get("nodes")):
        kind, config = node.get("type"), node.get("config")
        config = config if isinstance(config, dict) else {}
        if kind == "approval":
            if "timeout" not in config or node.get("on_error") != "continue":
                return False
            try:
                if parse_duration(config["timeout"]) > 5:
                    return False
            except DurationError:
                return False
        elif kind == "wait":
            try:
                if parse_duration(config.get("duration")) > 3:
                    return False
            except DurationError:
                return False
        elif kind == "subprocess":
            if config.get("process") not in known:
                return False
        elif kind not in RUNNABLE:
            return False
    return True


def sample(schema: JSON, rng: random.Random) -> JSON:
    """A value for a JSON Schema, good enough for simple example inputs."""
    if not isinstance(schema, dict):
        return None
    if "default" in schema:
        return schema["default"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        props = schema.get("properties")
        required = schema.get("required")
        need = set(required) if isinstance(required, list) else set()
        return {
            str(k): sample(v, rng)
            for k, v in (props.items() if isinstance(props, dict) else [])
            if k in need or rng.random() < 0.5
        }
    if kind == "array":
        return [sample(schema.get("items", {}), rng) for _ in range(rng.randint(1, 3))]
    if kind == "string":
        return rng.choice(["Error on save", "hello world", "dark mode please"])
    if kind == "integer":
        return rng.randint(1, 9)
    if kind == "number":
        return rng.randint(1, 99) / 4
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def example_workload(rng: random.Random) -> Workload:
    documents = [read_document(p) for p in sorted(EXAMPLES.glob("*.y*ml"))]
    for doc in documents:
        # an instance timeout is wall-clock time: on a loaded machine 30 cold restarts can
        # outlast it, and a timed-out instance is not what this test is about
        settings = doc.get("settings")
        if isinstance(settings, dict):
            settings.pop("timeout", None)
    known = {str(d.get("id")) for d in documents}
    out = Workload(documents=documents)
    for doc in documents:
        pid = str(doc.get("id"))
        if not _runs_unattended(doc, known):
            continue
        if pid in EXAMPLE_INPUTS:
            out.jobs += [Job(pid, inputs) for inputs in EXAMPLE_INPUTS[pid]]
        else:
            inputs = sample(doc.get("inputs", {"type": "object"}), rng)
            out.jobs.append(Job(pid, inputs if isinstance(inputs, dict) else {}, sampled=True))
    return out


def _wait(rng: random.Random) -> str:
    return f"{rng.randint(50, 200)}ms"


def _doc(pid: str, inputs: JSONObject, nodes: list[JSON], **rest: JSON) -> JSONObject:
    required: list[JSON] = [*sorted(inputs)]
    return {
        "schema": "cadenza/v1",
        "id": pid,
        "name": f"Crash test: {pid}",
        "inputs": {"type": "object", "properties": inputs, "required": required},
        "nodes": nodes,
        "edges": rest.pop("edges", []),
        **rest,
    }


def _chain(a: str, b: str, *more: str) -> list[JSON]:
    ids = [a, b, *more]
    return [{"from": x, "to": y} for x, y in itertools.pairwise(ids)]


def crash_definitions(rng: random.Random) -> list[JSONObject]:
    """Test-only definitions with waits of 50-200 ms so that kills land mid-flight."""
    integer: JSONObject = {"type": "integer"}
    integers: JSONObject = {"type": "array", "items": integer}
    chain = _doc(
        "crash-chain",
        {"n": integer},
        [
            {
                "id": "prepare",
                "type": "transform",
                "config": {"output": {"sq": "{{ inputs.n ** 2 }}"}},
            },
            {"id": "pause", "type": "wait", "config": {"duration": _wait(rng)}},
            {
                "id": "route",
                "type": "condition",
                "config": {
                    "branches": [{"port": "even", "when": "inputs.n % 2 == 0"}],
                    "default": "odd",
                },
            },
            {
                "id": "even",
                "type": "transform",
                "config": {"output": "{{ nodes.prepare.output.sq // 2 }}"},
            },
            {
                "id": "odd",
                "type": "transform",
                "config": {"output": "{{ nodes.prepare.output.sq * 3 + 1 }}"},
            },
            {"id": "settle", "type": "wait", "config": {"duration": _wait(rng)}},
            {
                "id": "finish",
                "type": "transform",
                "config": {
                    "output": "{{ inputs.n }} -> {{ nodes.even.output or nodes.odd.output }}"
                },
            },
        ],
        edges=[
            *_chain("prepare", "pause", "route"),
            {"from": "route.even", "to": "even"},
            {"from": "route.odd", "to": "odd"},
            {"from": "even", "to": "settle"},
            {"from": "odd", "to": "settle"},
            {"from": "settle", "to": "finish"},
        ],
        outputs={"parity": "{{ nodes.route.output.port }}", "result": "{{ nodes.finish.output }}"},
    )
    loop = _doc(
        "crash-loop",
        {"target": integer, "step": integer},
        [
            {
                "id": "count",
                "type": "loop",
                "config": {
                    "until": "output.n >= inputs.target",
                    "max_iterations": 200,
                    "body": {
                        "nodes": [
                            {"id": "tick", "type": "wait", "config": {"duration": _wait(rng)}},
                            {
                                "id": "step",
                                "type": "transform",
                                "config": {"output": {"n": "{{ (iteration + 1) * inputs.step }}"}},
                            },
                        ],
                        "edges": _chain("tick", "step"),
                    },
                },
            },
            {
                "id": "report",
                "type": "transform",
                "config": {"output": "{{ nodes.count.output.iterations }} rounds"},
            },
        ],
        edges=_chain("count", "report"),
        outputs={"last": "{{ nodes.count.output.last }}", "report": "{{ nodes.report.output }}"},
    )
    each = _doc(
        "crash-map",
        {"items": integers},
        [
            {
                "id": "each",
                "type": "map",
                "config": {
                    "items": "inputs.items",
                    "concurrency": 3,
                    "body": {
                        "nodes": [
                            {
                                "id": "square",
                                "type": "transform",
                                "config": {"output": "{{ item * item }}"},
                            },
                            {"id": "rest", "type": "wait", "config": {"duration": _wait(rng)}},
                            {
                                "id": "label",
                                "type": "transform",
                                "config": {
                                    "output": "{{ index }}:{{ item }}^2={{ nodes.square.output }}"
                                },
                            },
                        ],
                        "edges": _chain("square", "rest", "label"),
                    },
                },
            },
            {
                "id": "total",
                "type": "transform",
                "config": {"output": "{{ nodes.each.output|join(',') }}"},
            },
        ],
        edges=_chain("each", "total"),
        outputs={"labels": "{{ nodes.each.output }}", "total": "{{ nodes.total.output }}"},
    )
    nested = _doc(
        "crash-nested",
        {"groups": integers},
        [
            {
                "id": "groups",
                "type": "map",
                "config": {
                    "items": "inputs.groups",
                    "concurrency": 2,
                    "output": "{{ nodes.spin.output.last }}",
                    "body": {
                        "nodes": [
                            {
                                "id": "spin",
                                "type": "loop",
                                "config": {
                                    "until": "iteration + 1 >= item",
                                    "max_iterations": 20,
                                    "body": {
                                        "nodes": [
                                            {
                                                "id": "nap",
                                                "type": "wait",
                                                "config": {"duration": _wait(rng)},
                                            },
                                            {
                                                "id": "mark",
                                                "type": "transform",
                                                "config": {"output": "{{ index }}.{{ iteration }}"},
                                            },
                                        ],
                                        "edges": _chain("nap", "mark"),
                                    },
                                },
                            }
                        ]
                    },
                },
            }
        ],
        outputs={"marks": "{{ nodes.groups.output }}"},
    )
    return [chain, loop, each, nested]


def crash_jobs(rng: random.Random, count: int) -> list[Job]:
    jobs: list[Job] = []
    for _ in range(count):
        kind = rng.choice(["crash-chain", "crash-loop", "crash-loop", "crash-map", "crash-nested"])
        if kind == "crash-chain":
            inputs: JSONObject = {"n": rng.randint(2, 40)}
        elif kind == "crash-loop":
            step = rng.randint(1, 3)
            inputs = {"step": step, "target": step * rng.randint(40, 90)}
        elif kind == "crash-map":
            inputs = {"items": [rng.randint(1, 20) for _ in range(rng.randint(3, 8))]}
        else:
            inputs = {"groups": [rng.randint(1, 6) for _ in range(rng.randint(2, 4))]}
        jobs.append(Job(kind, inputs))
    return jobs


def build_workload(
    rng: random.Random, size: int, extra: list[JSONObject] | None = None
) -> Workload:
    workload = example_workload(rng)
    workload.documents += crash_definitions(rng) + list(extra or [])
    workload.jobs += crash_jobs(rng, size - len(workload.jobs))
    rng.shuffle(workload.jobs)
    return workload


# ---- in-process helpers (the CLI-equivalent API) ---------------------------------------------
def _settings(url: str, **overrides: object) -> Settings:
    return Settings(
        database_url=url,
        egress_allowed_hosts=["127.0.0.1"],
        sweep_interval_s=0.05,
        **overrides,  # type: ignore[arg-type]
    )


async def fault_free_outputs(url: str, workload: Workload) -> list[JSONObject | None]:
    """Run every job once, without faults; drop sampled jobs that do not complete."""
    rt = await build(_settings(url))
    await rt.engine.start()
    try:
        for doc in workload.documents:
            await rt.definitions.publish(doc)
        ids: list[str | None] = []
        for job in workload.jobs:
            try:
                iid = await rt.engine.submit(StartInstance(job.process_id, job.inputs))
            except (InputsInvalid, DomainError):
                if not job.sampled:
                    raise
                iid = None
            ids.append(iid if isinstance(iid, str) else None)
        waits = [rt.engine.wait_finished(i) for i in ids if i is not None]
        await asyncio.wait_for(asyncio.gather(*waits), REFERENCE_TIMEOUT_S)
        outputs: list[JSONObject | None] = []
        for job, iid in zip(workload.jobs, ids, strict=True):
            row = await rt.store.get_instance(iid) if iid is not None else None
            if row is not None and row.status == "completed":
                outputs.append(row.outputs)
            else:
                assert job.sampled, f"{job} did not complete without faults: {row}"
                outputs.append(None)
        return outputs
    finally:
        await rt.close()


def keep_completed(workload: Workload, reference: list[JSONObject | None]) -> list[JSONObject]:
    kept = [(j, o) for j, o in zip(workload.jobs, reference, strict=True) if o is not None]
    workload.jobs = [j for j, _ in kept]
    return [o for _, o in kept]


async def start_instances(url: str, workload: Workload) -> list[str]:
    """Publish and start every job with an engine that runs no tasks (run_worker=False)."""
    rt = await build(Settings(database_url=url), run_worker=False)
    await rt.engine.start()
    try:
        for doc in workload.documents:
            await rt.definitions.publish(doc)
        ids = [await rt.engine.submit(StartInstance(j.process_id, j.inputs)) for j in workload.jobs]
    finally:
        await rt.close()
    assert all(isinstance(i, str) for i in ids)
    return [str(i) for i in ids]


# ---- worker processes ----------------------------------------------------------------------
def worker_command() -> list[str]:
    if importlib.util.find_spec("cadenza.__main__") is not None:
        return [sys.executable, "-m", "cadenza", "worker"]
    return [str(ROOT / ".venv" / "bin" / "cadenza"), "worker"]


@dataclass
class WorkerProcess:
    worker_id: str
    proc: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if line.startswith("worker ") and " running" in line:
                self.ready.set()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])


@dataclass
class Workers:
    """Spawns ``cadenza worker`` processes; every one is gone when the block ends."""

    url: str
    cwd: Path
    spawned: list[WorkerProcess] = field(default_factory=list)

    async def spawn(self, worker_id: str, **settings: str) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
        # these tests kill workers at random while they hold innocent tasks, often one task
        # through several kills: the poison-task limit (task_max_crashes) would fail them
        env["CADENZA_TASK_MAX_CRASHES"] = "0"
        env |= {f"CADENZA_{k.upper()}": v for k, v in settings.items()}
        env |= {
            "CADENZA_DATABASE_URL": self.url,
            "CADENZA_WORKER_ID": worker_id,
            "CADENZA_LEASE_S": LEASE_S,
            "CADENZA_SWEEP_INTERVAL_S": SWEEP_INTERVAL_S,
            "CADENZA_EGRESS_ALLOWED_HOSTS": '["127.0.0.1"]',
            "COLUMNS": "500",  # keep the readiness line on one line
        }
        proc = await asyncio.create_subprocess_exec(
            *worker_command(),
            cwd=self.cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        w = WorkerProcess(worker_id, proc)
        w.reader = asyncio.create_task(w.read())
        self.spawned.append(w)
        return w

    async def until_ready(self, w: WorkerProcess) -> None:
        waits = [asyncio.ensure_future(w.ready.wait()), asyncio.ensure_future(w.proc.wait())]
        _, pending = await asyncio.wait(
            waits, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        for t in pending:
            t.cancel()
        assert w.ready.is_set(), (
            f"worker {w.worker_id} not ready ({w.proc.returncode}):\n{w.tail()}"
        )

    async def kill(self, w: WorkerProcess) -> None:
        assert w.proc.returncode is None, f"worker {w.worker_id} died by itself:\n{w.tail()}"
        w.proc.send_signal(signal.SIGKILL)
        await self._reap(w)

    async def exited(self, w: WorkerProcess) -> int:
        """Wait until the worker exits by itself (a crash point killed it); its exit code."""
        return await self._reap(w)

    async def stop(self, w: WorkerProcess) -> int:
        """SIGTERM: a graceful stop; returns the exit code."""
        assert w.proc.returncode is None, f"worker {w.worker_id} died by itself:\n{w.tail()}"
        w.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(w.proc.wait()), 30)
        except TimeoutError:
            w.proc.kill()
        return await self._reap(w)

    async def _reap(self, w: WorkerProcess) -> int:
        code = await w.proc.wait()
        if w.reader is not None:
            await w.reader
        return code

    def tracebacks(self) -> list[str]:
        return [
            f"{w.worker_id}:\n{w.tail(60)}"
            for w in self.spawned
            if any("Traceback" in x for x in w.lines)
        ]

    async def close(self) -> None:
        for w in self.spawned:
            if w.proc.returncode is None:
                w.proc.kill()
            await self._reap(w)


@contextlib.asynccontextmanager
async def workers(url: str, cwd: Path) -> AsyncIterator[Workers]:
    pool = Workers(url, cwd)
    try:
        yield pool
    finally:
        await pool.close()


@dataclass
class KillStats:
    kills: int = 0
    after_ready: int = 0
    during_startup: int = 0
    with_work_left: int = 0


async def kill_once(
    pool: Workers, worker_id: str, rng: random.Random, store: SqlStore, stats: KillStats
) -> None:
    """Start a worker, let it run 50-600 ms (now and then: kill it while it starts), kill it."""
    w = await pool.spawn(worker_id)
    if rng.random() < 0.15:
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        stats.during_startup += 1
    else:
        await pool.until_ready(w)
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        stats.after_ready += 1
    await pool.kill(w)
    stats.kills += 1
    if await store.unfinished_instances():
        stats.with_work_left += 1


async def wait_all_terminal(store: SqlStore, pool: Workers) -> None:
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while time.monotonic() < deadline:
        counts = await store.count_instances()
        if counts and not counts.get("running"):
            return
        await asyncio.sleep(0.25)
    logs = "\n".join(f"{w.worker_id}: {w.tail(20)}" for w in pool.spawned[-2:])
    pytest.fail(f"instances still running after {FINISH_TIMEOUT_S}s: {counts}\n{logs}")


@dataclass
class Phases:
    """Wall time of each phase, for the printed summary."""

    last: float = field(default_factory=time.monotonic)
    spent: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.spent[name] = round(now - self.last, 1)
        self.last = now


# ---- checks ----------------------------------------------------------------------------------
def journal_problems(iid: str, journal: list[tuple[int, ev.Event]]) -> list[str]:
    problems: list[str] = []
    seqs = [s for s, _ in journal]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"{iid}: journal seq has gaps or does not start at 1: {seqs}")
    terminal: Counter[str] = Counter()
    completed: Counter[tuple[str, int]] = Counter()
    tasks: set[str] = set()
    for _, e in journal:
        task_id = getattr(e, "task_id", None)
        if isinstance(task_id, str):
            tasks.add(task_id)
        if isinstance(e, TERMINAL):
            terminal[e.task_id] += 1
        if isinstance(e, ev.TaskCompleted):
            completed[(e.task_id, e.attempt)] += 1
    problems += [
        f"{iid}: task {t} completed {n}x in attempt {a}" for (t, a), n in completed.items() if n > 1
    ]
    problems += [
        f"{iid}: task {t} has {terminal[t]} terminal events"
        for t in sorted(tasks)
        if terminal[t] != 1
    ]
    return problems


@dataclass
class Verdict:
    instances: int
    events: int
    requeued: int
    journals: dict[str, list[tuple[int, ev.Event]]]


async def verify(store: SqlStore, ids: list[str], expected: list[JSONObject]) -> Verdict:
    """Every instance completed with the fault-free outputs; every journal is sound."""
    rows = await store.list_instances(limit=1_000_000)
    unfinished = [(r.id, r.process_id, r.status, r.error) for r in rows if r.status != "completed"]
    assert unfinished == []
    by_id = {r.id: r for r in rows}
    mismatched = [
        (iid, by_id[iid].process_id, by_id[iid].outputs, want)
        for iid, want in zip(ids, expected, strict=True)
        if by_id[iid].outputs != want
    ]
    assert mismatched == []
    journals = {r.id: await store.journal(r.id) for r in rows}
    problems = [p for iid, j in journals.items() for p in journal_problems(iid, j)]
    assert problems == []
    events = [e for j in journals.values() for _, e in j]
    requeued = sum(isinstance(e, ev.TaskRequeued) for e in events)
    return Verdict(len(rows), len(events), requeued, journals)


# ---- side effects: a local HTTP server that logs every execution -----------------------------
@dataclass(frozen=True)
class Execution:
    key: str  # Idempotency-Key: instance:node:iteration:attempt
    start: float
    end: float
    delivered: bool  # the caller was still connected when the handler finished

    @property
    def prefix(self) -> str:
        return self.key.rsplit(":", 1)[0]


@dataclass
class SideEffects:
    url: str = ""
    executions: list[Execution] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        start = time.monotonic()
        await asyncio.sleep(0.1)
        transport = request.transport
        delivered = transport is not None and not transport.is_closing()
        key = request.headers.get("Idempotency-Key", "")
        self.executions.append(Execution(key, start, time.monotonic(), delivered))
        return web.json_response({"result": int(payload["value"]) * 10 + int(payload["round"])})


@contextlib.asynccontextmanager
async def side_effect_server() -> AsyncIterator[SideEffects]:
    server = SideEffects()
    async with post_server(server.handle) as server.url:
        yield server


def http_definitions(url: str, rng: random.Random) -> list[JSONObject]:
    def call(value: str, round_: str) -> JSONObject:
        config: JSONObject = {
            "method": "POST",
            "url": url,
            "json": {"value": value, "round": round_},
        }
        return {"id": "call", "type": "http", "config": config}

    rounds = _doc(
        "crash-http-loop",
        {"value": {"type": "integer"}, "rounds": {"type": "integer"}},
        [
            {
                "id": "rounds",
                "type": "loop",
                "config": {
                    "until": "iteration + 1 >= inputs.rounds",
                    "max_iterations": 100,
                    "body": {
                        "nodes": [
                            call("{{ inputs.value }}", "{{ iteration }}"),
                            {"id": "gap", "type": "wait", "config": {"duration": _wait(rng)}},
                            {
                                "id": "keep",
                                "type": "transform",
                                "config": {"output": "{{ nodes.call.output.body.result }}"},
                            },
                        ],
                        "edges": _chain("call", "gap", "keep"),
                    },
                },
            }
        ],
        outputs={
            "last": "{{ nodes.rounds.output.last }}",
            "rounds": "{{ nodes.rounds.output.iterations }}",
        },
    )
    each = _doc(
        "crash-http-map",
        {"items": {"type": "array", "items": {"type": "integer"}}},
        [
            {
                "id": "each",
                "type": "map",
                "config": {
                    "items": "inputs.items",
                    "concurrency": 3,
                    "output": "{{ nodes.call.output.body.result }}",
                    "body": {"nodes": [call("{{ item }}", "{{ index }}")]},
                },
            }
        ],
        outputs={"results": "{{ nodes.each.output }}"},
    )
    return [rounds, each]


def http_jobs(rng: random.Random, count: int) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        if i % 2 == 0:
            jobs.append(
                Job("crash-http-loop", {"value": rng.randint(1, 99), "rounds": rng.randint(15, 35)})
            )
        else:
            items: JSON = [rng.randint(1, 99) for _ in range(rng.randint(4, 12))]
            jobs.append(Job("crash-http-map", {"items": items}))
    return jobs


def concurrent_runs(executions: list[Execution]) -> list[str]:
    """Delivered executions of one task (key prefix) that overlapped in time."""
    by_prefix: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        if e.delivered:
            by_prefix[e.prefix].append(e)
    problems: list[str] = []
    for prefix, runs in by_prefix.items():
        runs.sort(key=lambda e: e.start)
        for a, b in itertools.pairwise(runs):
            if b.start < a.end:
                problems.append(f"{prefix}: {a} overlaps {b}")
    return problems


def undelivered_results(
    journals: dict[str, list[tuple[int, ev.Event]]], executions: list[Execution]
) -> list[str]:
    """Recorded http results whose attempt never got a response to a live worker."""
    delivered = {e.key for e in executions if e.delivered}
    problems: list[str] = []
    for iid, journal in journals.items():
        where = {
            e.task_id: (e.scope, e.node_id)
            for _, e in journal
            if isinstance(e, ev.TaskScheduled) and e.node_type == "http"
        }
        for _, e in journal:
            if isinstance(e, ev.TaskCompleted) and e.task_id in where:
                key = idempotency_key(iid, *where[e.task_id], e.attempt)
                if key not in delivered:
                    problems.append(f"{key}: recorded, but no execution was delivered")
    return problems


# ---- the tests -------------------------------------------------------------------------------
async def test_single_worker_restarted_after_every_kill(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    phases = Phases()
    workload = build_workload(rng, 40)
    reference = await fault_free_outputs(f"sqlite:///{tmp_path}/reference.db", workload)
    expected = keep_completed(workload, reference)
    phases.mark("reference")
    url = f"sqlite:///{tmp_path}/crash.db"
    ids = await start_instances(url, workload)
    store = SqlStore(create_engine(url))
    stats = KillStats()
    try:
        async with workers(url, tmp_path) as pool:
            while stats.after_ready < 30:
                await kill_once(pool, "crash-worker", rng, store, stats)
            phases.mark("kills")
            final = await pool.spawn("crash-worker")
            await pool.until_ready(final)
            await wait_all_terminal(store, pool)
            assert await pool.stop(final) == 0, final.tail()
            assert pool.tracebacks() == []
            phases.mark("final")
        verdict = await verify(store, ids, expected)
    finally:
        await store.close()
    print(
        f"\n{len(ids)} started, {verdict.instances} instances, {verdict.events} events, "
        f"{verdict.requeued} requeued; {stats}; {phases.spent}"
    )
    assert stats.kills >= 30
    assert stats.with_work_left >= 15, "most kills landed after the work was done"


@pytest.fixture(
    params=[
        pytest.param("pg_database_url", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("mariadb_database_url", marks=pytest.mark.mariadb, id="mariadb"),
    ]
)
def shared_url(request: pytest.FixtureRequest) -> str:
    """A fresh database several worker processes share: PostgreSQL, then MariaDB."""
    url: str = request.getfixturevalue(request.param)
    return url


async def test_two_workers_one_killed_repeatedly(tmp_path: Path, shared_url: str) -> None:
    rng = random.Random(SEED + 1)
    phases = Phases()
    async with side_effect_server() as server:
        workload = build_workload(rng, 14, extra=http_definitions(server.url, rng))
        workload.jobs += http_jobs(rng, 10)
        rng.shuffle(workload.jobs)
        reference = await fault_free_outputs(f"sqlite:///{tmp_path}/reference.db", workload)
        expected = keep_completed(workload, reference)
        server.executions.clear()
        phases.mark("reference")
        url = shared_url
        ids = await start_instances(url, workload)
        store = SqlStore(create_engine(url))
        stats = KillStats()
        try:
            async with workers(url, tmp_path) as pool:
                # a small capacity leaves queued tasks for the flaky worker to claim
                steady = await pool.spawn("steady", capacity=STEADY_CAPACITY)
                await pool.until_ready(steady)
                while stats.after_ready < 10:
                    await kill_once(pool, "flaky", rng, store, stats)
                phases.mark("kills")
                flaky = await pool.spawn("flaky")
                await pool.until_ready(flaky)
                await wait_all_terminal(store, pool)
                assert await pool.stop(steady) == 0, steady.tail()
                assert await pool.stop(flaky) == 0, flaky.tail()
                assert pool.tracebacks() == []
                phases.mark("final")
            verdict = await verify(store, ids, expected)
        finally:
            await store.close()
        executions = list(server.executions)
    assert concurrent_runs(executions) == []
    assert undelivered_results(verdict.journals, executions) == []
    reruns = len(executions) - len({e.prefix for e in executions})
    cut = sum(not e.delivered for e in executions)
    print(
        f"\n{len(ids)} started, {verdict.instances} instances, {verdict.events} events, "
        f"{verdict.requeued} requeued, {len(executions)} http executions "
        f"({reruns} re-runs, {cut} cut off by a kill); "
        f"{stats}; {phases.spent}"
    )
    assert stats.kills >= 10
