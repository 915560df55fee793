"""What the cluster suite runs: the examples that run offline, a few definitions whose waits
let kills land mid-flight, an ``llm`` node on the offline provider, a ``tool`` node on the test
MCP server, and (with an external worker) a ``task`` node; and their fault-free outputs.

Left out: ``examples/ai-triage.yaml`` (its agent asks the ``time`` MCP server for the current
time, so its reply differs from run to run and cannot be compared with a fault-free run).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests.cluster.external_worker import answer
from tests.e2e.test_crash_recovery import crash_definitions, example_workload

from cadenza.application.external import Assignment
from cadenza.bootstrap import Runtime, build
from cadenza.domain.agent import AgentType
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSON, JSONObject
from cadenza.entrypoints.client import WorkerClient
from cadenza.settings import Settings

REFERENCE_TIMEOUT_S = 120.0
MCP_SERVER = "t"
EXTERNAL_CAPABILITY = "shout"


@dataclass(frozen=True)
class Job:
    process_id: str
    inputs: JSONObject


@dataclass
class Workload:
    documents: list[JSONObject] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    expected: list[JSONObject] = field(default_factory=list)  # per job, after ``reference``

    def job(self, i: int) -> tuple[Job, JSONObject]:
        """Instance number ``i`` runs job ``i mod len(jobs)``: (the job, its expected outputs)."""
        k = i % len(self.jobs)
        return self.jobs[k], self.expected[k]


def _doc(pid: str, props: JSONObject, nodes: list[JSON], outputs: JSONObject) -> JSONObject:
    required: list[JSON] = [*sorted(props)]
    return {
        "schema": "cadenza/v1",
        "id": pid,
        "name": f"Cluster: {pid}",
        "inputs": {"type": "object", "properties": props, "required": required},
        "nodes": nodes,
        "outputs": outputs,
    }


def llm_definition() -> JSONObject:
    """One ``llm`` call on the default (offline, deterministic) provider, run by a worker."""
    node: JSON = {
        "id": "ask",
        "type": "llm",
        "config": {"prompt": "Say something about {{ inputs.topic }}"},
    }
    return _doc(
        "cluster-llm",
        {"topic": {"type": "string"}},
        [node],
        {"text": "{{ nodes.ask.output.text }}"},
    )


def tool_definition() -> JSONObject:
    """One ``tool`` node: ``echo`` of the test MCP server (read-only). Through the MCP proxy,
    a call the proxy's kill cut short fails as retryable (nothing is known to have run; the
    tool allows a blind retry); a node retries only when its definition says so (the default
    is one attempt), so this one does: up to 20 attempts 0.5 s, 1 s, 2 s, then 5 s apart
    (about 85 s in all, longer than the proxy takes to restart on a loaded machine)."""
    node: JSON = {
        "id": "say",
        "type": "tool",
        "retry": {"max_attempts": 20, "backoff": "exponential", "initial": 0.5, "max": 5},
        "config": {
            "server": MCP_SERVER,
            "tool": "echo",
            "arguments": {"text": "{{ inputs.word }}"},
        },
    }
    return _doc(
        "cluster-tool",
        {"word": {"type": "string"}},
        [node],
        {"echo": "{{ nodes.say.output.content }}"},
    )


def task_definition() -> JSONObject:
    """One ``task`` node served by an external worker agent with ``shout``. An assignment
    taken by a worker that is then killed is not offered again: the attempt waits until its
    timeout (10 s here) and fails as retryable, so the node retries (a new attempt, a new
    assignment), up to 10 attempts 0.5 s apart."""
    node: JSON = {
        "id": "shout",
        "type": "task",
        "timeout": 10,
        "retry": {"max_attempts": 10, "backoff": "fixed", "initial": 0.5},
        "requires": [EXTERNAL_CAPABILITY],
        "config": {"agent_type": "worker", "input": {"text": "{{ inputs.text }}"}},
    }
    return _doc(
        "cluster-task",
        {"text": {"type": "string"}},
        [node],
        {"shout": "{{ nodes.shout.output.result.shout }}"},
    )


def _small_crash_jobs(rng: random.Random, count: int) -> list[Job]:
    """Jobs of tests/e2e's crash definitions, sized to finish in a second or two."""
    jobs: list[Job] = []
    for i in range(count):
        kind = ("crash-chain", "crash-loop", "crash-map", "crash-nested")[i % 4]
        if kind == "crash-chain":
            inputs: JSONObject = {"n": rng.randint(2, 40)}
        elif kind == "crash-loop":
            step = rng.randint(1, 3)
            inputs = {"step": step, "target": step * rng.randint(2, 6)}
        elif kind == "crash-map":
            inputs = {"items": [rng.randint(1, 20) for _ in range(rng.randint(2, 5))]}
        else:
            inputs = {"groups": [rng.randint(1, 3) for _ in range(rng.randint(2, 3))]}
        jobs.append(Job(kind, inputs))
    return jobs


def build_workload(rng: random.Random, *, with_task: bool) -> Workload:
    examples = example_workload(rng)
    out = Workload(documents=[*examples.documents, *crash_definitions(rng)])
    out.jobs = [Job(j.process_id, j.inputs) for j in examples.jobs if not j.sampled]
    out.jobs += _small_crash_jobs(rng, 8)
    out.documents += [llm_definition(), tool_definition()]
    out.jobs += [Job("cluster-llm", {"topic": t}) for t in ("tides", "owls")]
    out.jobs += [Job("cluster-tool", {"word": w}) for w in ("alpha", "beta")]
    if with_task:
        out.documents.append(task_definition())
        out.jobs += [Job("cluster-task", {"text": t}) for t in ("quiet", "louder")]
    rng.shuffle(out.jobs)
    return out


def engine_settings(database_url: str, mcp_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        egress_allowed_hosts=["127.0.0.1"],
        sweep_interval_s=0.05,
        mcp_servers=[{"name": MCP_SERVER, "url": mcp_url}],  # type: ignore[list-item]
        log_json=False,
    )


@contextlib.asynccontextmanager
async def _in_process_worker(rt: Runtime) -> AsyncIterator[None]:
    """The external worker's answers, through the in-process protocol."""
    agent = await rt.agents.register(
        "reference-worker", AgentType.WORKER, [EXTERNAL_CAPABILITY], {}, capacity=8
    )

    async def handle(assignment: Assignment) -> JSON:
        return answer(assignment)

    client = WorkerClient(rt.external, agent.id, poll_timeout_s=0.5, concurrency=4)
    running = asyncio.create_task(client.run(handle))
    try:
        yield
    finally:
        client.stop()
        await asyncio.wait_for(running, 10)


async def reference(workload: Workload, database_url: str, mcp_url: str) -> None:
    """Run every job once in one fault-free process; fill ``workload.expected``."""
    rt = await build(engine_settings(database_url, mcp_url))
    await rt.start()
    try:
        async with _in_process_worker(rt):
            for doc in workload.documents:
                await rt.definitions.publish(doc)
            ids = [
                await rt.engine.submit(StartInstance(j.process_id, j.inputs)) for j in workload.jobs
            ]
            waits = [rt.engine.wait_finished(str(i)) for i in ids]
            await asyncio.wait_for(asyncio.gather(*waits), REFERENCE_TIMEOUT_S)
        rows = [await rt.store.get_instance(str(i)) for i in ids]
    finally:
        await rt.close()
    done = [(j, r) for j, r in zip(workload.jobs, rows, strict=True)]
    bad = [(j, r) for j, r in done if r is None or r.status != "completed" or r.outputs is None]
    assert bad == [], f"jobs that do not complete without faults: {bad}"
    workload.expected = [r.outputs for _, r in done if r is not None and r.outputs is not None]
