"""An external worker agent as its own process: polls one API for assignments of a ``task``
node and answers each from its input alone (``{"shout": TEXT.upper()}``).

    python -m tests.cluster.external_worker --api http://127.0.0.1:8081 --key cdz_... \
        --agent-id AGENT --name external-worker-1

It prints ``external worker NAME polling URL`` once it starts polling (the cluster's readiness
line) and ``accepted KEY`` for each result the API accepted (``KEY``: the assignment's
idempotency key, ``instance:node:iteration:attempt``), so a test can count acceptances per task.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable

from cadenza.application.external import Assignment
from cadenza.domain.json import JSON
from cadenza.entrypoints.client import TaskRejected, WorkerClient
from cadenza.entrypoints.client_http import HttpWorkerTransport

POLL_TIMEOUT_S = 5.0
CONCURRENCY = 4


def answer(assignment: Assignment) -> JSON:
    """The worker's whole job, deterministic so the outputs match a fault-free run."""
    payload = assignment.input
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str):
        raise TaskRejected(f"no text in {payload!r}")
    return {"shout": text.upper()}


class LoggingTransport:
    """``HttpWorkerTransport`` that prints each accepted result."""

    def __init__(self, inner: HttpWorkerTransport) -> None:
        self._inner = inner
        self._keys: dict[str, str] = {}

    async def poll(
        self, worker_agent_id: str, capabilities: Iterable[str] | None, timeout_s: float
    ) -> Assignment | None:
        found = await self._inner.poll(worker_agent_id, capabilities, timeout_s)
        if found is not None:
            self._keys[found.id] = found.idempotency_key
        return found

    async def complete(self, assignment_id: str, output: JSON) -> None:
        await self._inner.complete(assignment_id, output)
        print(f"accepted {self._keys.pop(assignment_id, assignment_id)}", flush=True)

    async def fail(self, assignment_id: str, error: str, retryable: bool = True) -> None:
        self._keys.pop(assignment_id, None)
        await self._inner.fail(assignment_id, error, retryable)

    async def heartbeat(self, agent_id: str) -> None:
        await self._inner.heartbeat(agent_id)


async def handle(assignment: Assignment) -> JSON:
    return answer(assignment)


async def main(api: str, key: str, agent_id: str, name: str) -> None:
    async with HttpWorkerTransport(api, key) as http:
        client = WorkerClient(
            LoggingTransport(http), agent_id, poll_timeout_s=POLL_TIMEOUT_S, concurrency=CONCURRENCY
        )
        print(f"external worker {name} polling {api}", flush=True)
        await client.run(handle)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.cluster.external_worker")
    p.add_argument("--api", required=True, help="base URL of the API process to poll")
    p.add_argument("--key", required=True, help="an API key of an operator or above")
    p.add_argument("--agent-id", required=True, help="the registered worker agent")
    p.add_argument("--name", default="external-worker")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    asyncio.run(main(args.api, args.key, args.agent_id, args.name))
