"""The external worker protocol: workers long-poll for assignments and report their results.

A ``task`` node that picked a ``worker`` agent calls ``dispatch`` (on the engine process that
runs the task): it stores an ``open`` assignment for that agent and waits for its result. A
worker calls ``poll`` on any API process (the poll is also its heartbeat), which takes the
oldest matching assignment from the store; it runs it and calls ``complete`` or ``fail``, again
on any process. The store accepts one result per assignment; an assignment whose dispatcher
gave up (timeout, cancel) is ``abandoned``, so a late result is refused rather than recorded.

Waiting, on both sides, is woken at once by ``wake`` (called here for changes made in this
process; another component, such as the event bus, may call it for changes made elsewhere)
and otherwise looks at the store every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable

from cadenza.application.agent_definitions import AgentError
from cadenza.application.agents import AgentRegistry
from cadenza.application.outage_log import OutageLog
from cadenza.application.ports import Clock, IdGenerator
from cadenza.application.ports_assignments import AssignmentStore
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.domain.agent import Agent, AgentType
from cadenza.domain.assignment import Assignment, AssignmentState, AssignmentStatus
from cadenza.domain.json import JSON

__all__ = ["Assignment", "AssignmentNotFound", "ExternalWorkers"]

log = logging.getLogger(__name__)
POLL_S = 0.1  # default of the setting assignment_poll_s
EXPIRY_GRACE_S = 5.0  # past its deadline this long, an assignment's dispatcher is gone (skew)
RETAIN_S = 86_400.0  # finished assignments are deleted by ``expire`` a day after they finished
_STATE_PAGE = 500  # assignment states read per query by the result watcher


class AssignmentNotFound(LookupError):
    """No open assignment has this id: it finished, or its task stopped waiting for it."""


def assignment_id(task_id: str, idempotency_key: str, replaces: str) -> str:
    """The id of an attempt's assignment: the same in every process that dispatches the
    attempt (``replaces``: the abandoned assignment it follows, or "")."""
    digest = hashlib.sha256(f"{task_id}\n{idempotency_key}\n{replaces}".encode()).hexdigest()
    return "as" + digest[:32]


class ExternalWorkers:
    def __init__(
        self,
        registry: AgentRegistry,
        new_id: IdGenerator,
        store: AssignmentStore,
        clock: Clock,
        poll_s: float = POLL_S,
    ) -> None:
        self._registry = registry
        self._new_id = new_id
        self._store = store
        self._clock = clock
        self._poll_s = poll_s
        self._watch_outage = OutageLog(log, "reading assignment results")
        self._changed = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[AssignmentState]] = {}
        self._watcher: asyncio.Task[None] | None = None

    # ---- wake-ups ------------------------------------------------------------------------
    def wake(self) -> None:
        """Assignments changed (added, taken or finished, here or in another process): every
        waiting poll and dispatch looks at the store now instead of after ``poll_s``."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _nap(self, changed: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await changed.wait()

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            changed = self._changed  # before looking: a change while we look wakes the nap
            found = await self._take(worker_agent_id, caps)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await self._nap(changed, min(self._poll_s, remaining))

    async def _take(self, agent_id: str, caps: frozenset[str]) -> Assignment | None:
        """Take one; a poll cancelled (its client went away) while taking puts it back, so
        that the next poll gets it instead of its task timing out."""
        taking = asyncio.ensure_future(self._store.take(agent_id, caps, self._clock.now()))
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                found = await taking
                if found is not None:
                    await self._store.put_back(found.id, self._clock.now())
                    self.wake()
            raise

    async def agent_of(self, assignment_id: str) -> str:
        """The worker agent an unfinished assignment was given to (AssignmentNotFound if
        none)."""
        state = (await self._store.states([assignment_id])).get(assignment_id)
        if state is None or state.finished:
            raise AssignmentNotFound(f"no open assignment {assignment_id!r}")
        return state.agent_id

    async def complete(self, assignment_id: str, output: JSON) -> None:
        await self._finish(assignment_id, output, None, True)

    async def fail(self, assignment_id: str, error: str, retryable: bool = True) -> None:
        await self._finish(assignment_id, None, error, retryable)

    async def _finish(
        self, assignment_id: str, output: JSON, error: str | None, retryable: bool
    ) -> None:
        if not await self._store.finish(assignment_id, output, error, retryable, self._clock.now()):
            raise AssignmentNotFound(f"no open assignment {assignment_id!r}")
        self.wake()

    # ---- task side -----------------------------------------------------------------------
    async def dispatch(
        self,
        agent: Agent,
        call: NodeCall,
        input: JSON,
        instructions: str | None = None,
        timeout_s: float = 30.0,
    ) -> NodeResult:
        """Queue the attempt for ``agent`` and wait (at most ``timeout_s``) for its result.

        The same attempt run again (its process died while it waited, or its lease expired
        and another process took the task over while it still ran) does not queue it twice: a
        result already accepted for the attempt is returned, an assignment still open or taken
        is waited for; only after a timeout (abandoned) is the attempt queued anew. The id of
        an attempt's assignment is derived from the attempt (and the abandoned one it
        replaces), so of two dispatchers queueing the same attempt at once one inserts it and
        the other waits for it. So a worker's result for an attempt is accepted once."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout_s
        before = await self._store.latest(call.task_id, call.idempotency_key)
        while True:
            if before is None or before[1].status is AssignmentStatus.ABANDONED:
                replaces = "" if before is None else before[0]
                assignment_id = await self._queue(
                    agent, call, input, instructions, timeout_s, replaces
                )
                state = await self._wait(agent, assignment_id, until, timeout_s, None)
            else:
                assignment_id = before[0]
                state = await self._wait(agent, assignment_id, until, timeout_s, before[1])
            # abandoned by ``expire`` (its first dispatcher's deadline passed) while we
            # waited: queue the attempt anew while this dispatch still has time
            if state.status is not AssignmentStatus.ABANDONED or loop.time() >= until:
                break
            before = (assignment_id, state)
        if state.status is AssignmentStatus.DONE:
            return NodeResult(state.output)
        if state.status is AssignmentStatus.FAILED:
            raise NodeFailure(f"worker: {state.error}", retryable=state.retryable)
        raise NodeFailure(  # abandoned by ``expire`` while we still waited (clock skew)
            f"worker agent {agent.name!r}: the assignment was abandoned", retryable=True
        )

    async def _wait(
        self,
        agent: Agent,
        assignment_id: str,
        until: float,
        timeout_s: float,
        known: AssignmentState | None,
    ) -> AssignmentState:
        """The finished state of the assignment (``known`` when it already is), waiting until
        ``until`` (loop time) at most; then abandoned, and a retryable failure unless a result
        was accepted first."""
        if known is not None and known.finished:
            return known
        state: AssignmentState | None = None
        try:
            async with asyncio.timeout_at(until):
                state = await self._result(assignment_id)
        except TimeoutError as exc:
            state = await self._give_up(assignment_id)
            if state is None or not state.finished:
                what = "did not finish" if state is not None else "was not picked up"
                raise NodeFailure(
                    f"worker agent {agent.name!r}: the assignment {what} within {timeout_s:g}s",
                    retryable=True,
                ) from exc
        finally:
            if state is None:  # cancelled: nobody waits for this result any more
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._store.abandon(assignment_id, self._clock.now()))
        return state

    async def _queue(
        self,
        agent: Agent,
        call: NodeCall,
        input: JSON,
        instructions: str | None,
        timeout_s: float,
        replaces: str,
    ) -> str:
        """Store a new open assignment of this attempt for ``agent`` (unless one with its
        derived id exists: another dispatcher of the attempt queued it); its id."""
        assignment = Assignment(
            id=assignment_id(call.task_id, call.idempotency_key, replaces),
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
        now = self._clock.now()
        if await self._store.add(assignment, call.workspace_id, now, now + timeout_s):
            self.wake()  # a poll waiting in this process takes it at once
        return assignment.id

    async def _give_up(self, assignment_id: str) -> AssignmentState | None:
        """Timed out: abandon it. Returns the result if one was accepted first; else its
        state before (taken: the worker did not finish; None: nobody picked it up)."""
        before = (await self._store.states([assignment_id])).get(assignment_id)
        if await asyncio.shield(self._store.abandon(assignment_id, self._clock.now())):
            return (
                before if before is not None and before.status is AssignmentStatus.TAKEN else None
            )
        return (await self._store.states([assignment_id])).get(assignment_id)

    async def _result(self, assignment_id: str) -> AssignmentState:
        """Wait for the assignment to finish; one watcher reads the states of every waiting
        dispatch of this process per round."""
        fut: asyncio.Future[AssignmentState] = asyncio.get_running_loop().create_future()
        self._waiting[assignment_id] = fut
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="assignment-results")
        try:
            return await fut
        finally:
            self._waiting.pop(assignment_id, None)

    async def _watch(self) -> None:
        while self._waiting:
            changed = self._changed
            ids = list(self._waiting)
            for start in range(0, len(ids), _STATE_PAGE):
                states: dict[str, AssignmentState] | None = None
                with self._watch_outage.round():  # the store is away: looked at next round
                    states = await self._store.states(ids[start : start + _STATE_PAGE])
                if states is None:
                    break
                for assignment_id, state in states.items():
                    fut = self._waiting.get(assignment_id)
                    if fut is not None and not fut.done() and state.finished:
                        fut.set_result(state)
            await self._nap(changed, self._poll_s)

    # ---- bookkeeping ---------------------------------------------------------------------
    async def expire(self, now: float) -> int:
        """Abandon assignments more than ``EXPIRY_GRACE_S`` past their deadline (their
        dispatcher is gone: a live one abandons its own at the deadline) and delete finished
        ones older than ``RETAIN_S``. For the agent-management service to call periodically;
        returns how many it abandoned."""
        count = await self._store.expire(now - EXPIRY_GRACE_S, now - RETAIN_S)
        if count:
            self.wake()
        return count

    async def aclose(self) -> None:
        """Stop the result watcher (the engine has stopped: nobody waits any more)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def open_assignments(self, limit: int = 1000) -> list[Assignment]:
        """Assignments queued or running, oldest first (for monitoring)."""
        return await self._store.unfinished(limit)
