"""The external worker protocol: workers long-poll for assignments and report their results.

A ``task`` node that picked a ``worker`` agent calls ``dispatch``: it queues an ``Assignment``
for that agent and waits for its result. The worker process calls ``poll`` (which also counts
as a heartbeat), runs the assignment and calls ``complete`` or ``fail``. The queue lives in
this process: a worker must poll the process that runs the task (the HTTP routes of the API
issue forward to it). An assignment whose waiter gave up (timeout, cancel) is gone, so a late
result is refused rather than recorded twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from cadenza.application.agents import AgentError, AgentRegistry
from cadenza.application.ports import IdGenerator, NodeCall, NodeFailure, NodeResult
from cadenza.domain.agent import Agent, AgentType
from cadenza.domain.json import JSON


@dataclass(frozen=True)
class Assignment:
    """One task attempt handed to a worker; ``idempotency_key`` lets it deduplicate repeats."""

    id: str
    agent_id: str
    instance_id: str
    task_id: str
    node_id: str
    requires: tuple[str, ...]
    input: JSON
    instructions: str | None
    idempotency_key: str
    timeout_s: float


class AssignmentNotFound(LookupError):
    """No open assignment has this id: it finished, or its task stopped waiting for it."""


@dataclass
class _Open:
    assignment: Assignment
    result: asyncio.Future[JSON]
    taken: bool = False


class ExternalWorkers:
    def __init__(self, registry: AgentRegistry, new_id: IdGenerator) -> None:
        self._registry = registry
        self._new_id = new_id
        self._open: dict[str, _Open] = {}
        self._ready = asyncio.Condition()

    # ---- worker side ---------------------------------------------------------------------
    async def heartbeat(self, agent_id: str) -> None:
        """The worker is alive (AgentNotFound for an unknown id, AgentError for a non-worker)."""
        agent = await self._registry.get(agent_id)
        if agent.type is not AgentType.WORKER:  # checked first: it must not turn it healthy
            raise AgentError(f"agent {agent.name!r} is a {agent.type} agent, not a worker")
        await self._registry.heartbeat(agent_id)

    async def poll(
        self, worker_agent_id: str, capabilities: Iterable[str] | None, timeout_s: float
    ) -> Assignment | None:
        """Wait up to ``timeout_s`` for an assignment for this agent whose requirements are
        within ``capabilities`` (None: the agent's registered ones); take it and return it."""
        await self.heartbeat(worker_agent_id)
        if capabilities is None:
            capabilities = (await self._registry.get(worker_agent_id)).capabilities
        caps = frozenset(capabilities)
        async with self._ready:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait_for(lambda: self._match(worker_agent_id, caps))
            except TimeoutError:
                return None
            found = self._match(worker_agent_id, caps)
            assert found is not None  # wait_for returned with the lock held
            found.taken = True
            return found.assignment

    def agent_of(self, assignment_id: str) -> str:
        """The worker agent an open assignment was given to (AssignmentNotFound if none)."""
        entry = self._open.get(assignment_id)
        if entry is None:
            raise AssignmentNotFound(f"no open assignment {assignment_id!r}")
        return entry.assignment.agent_id

    async def complete(self, assignment_id: str, output: JSON) -> None:
        self._take(assignment_id).result.set_result(output)

    async def fail(self, assignment_id: str, error: str, retryable: bool = True) -> None:
        entry = self._take(assignment_id)
        entry.result.set_exception(NodeFailure(f"worker: {error}", retryable=retryable))

    def _match(self, agent_id: str, caps: frozenset[str]) -> _Open | None:
        for entry in self._open.values():
            a = entry.assignment
            if not entry.taken and a.agent_id == agent_id and caps.issuperset(a.requires):
                return entry
        return None

    def _take(self, assignment_id: str) -> _Open:
        entry = self._open.pop(assignment_id, None)
        if entry is None or entry.result.done():
            raise AssignmentNotFound(f"no open assignment {assignment_id!r}")
        return entry

    # ---- task side -----------------------------------------------------------------------
    async def dispatch(
        self,
        agent: Agent,
        call: NodeCall,
        input: JSON,
        instructions: str | None = None,
        timeout_s: float = 30.0,
    ) -> NodeResult:
        """Queue the attempt for ``agent`` and wait (at most ``timeout_s``) for its result."""
        assignment = Assignment(
            id=self._new_id(),
            agent_id=agent.id,
            instance_id=call.instance_id,
            task_id=call.task_id,
            node_id=call.node.id,
            requires=call.node.requires,
            input=input,
            instructions=instructions,
            idempotency_key=call.idempotency_key,
            timeout_s=timeout_s,
        )
        entry = _Open(assignment, asyncio.get_running_loop().create_future())
        async with self._ready:
            self._open[assignment.id] = entry
            self._ready.notify_all()
        try:
            async with asyncio.timeout(timeout_s):
                output = await entry.result
        except TimeoutError as exc:
            state = "did not finish" if entry.taken else "was not picked up"
            raise NodeFailure(
                f"worker agent {agent.name!r}: the assignment {state} within {timeout_s:g}s",
                retryable=True,
            ) from exc
        finally:
            self._open.pop(assignment.id, None)
        return NodeResult(output)

    def open_assignments(self) -> list[Assignment]:
        """Assignments queued or running, oldest first (for monitoring)."""
        return [entry.assignment for entry in self._open.values()]
