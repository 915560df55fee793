"""``WorkerClient``: run an external worker with an async handler per assignment.

    async def handle(assignment: Assignment) -> JSON:
        return {"summary": summarize(assignment.input)}

    client = WorkerClient(transport, agent_id="...")
    await client.run(handle)          # until client.stop() or cancellation

The transport is a small Protocol. ``ExternalWorkers`` (the in-process protocol) is one; an
HTTP transport for the API's worker routes has the same four methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from cadenza.application.external import Assignment
from cadenza.domain.json import JSON

__all__ = ["Assignment", "Handler", "TaskRejected", "WorkerClient", "WorkerTransport"]

log = logging.getLogger(__name__)

Handler = Callable[[Assignment], Awaitable[JSON]]
_ERROR_BACKOFF_S = 1.0


class WorkerTransport(Protocol):
    async def poll(
        self, worker_agent_id: str, capabilities: Iterable[str] | None, timeout_s: float
    ) -> Assignment | None: ...

    async def complete(self, assignment_id: str, output: JSON) -> None: ...

    async def fail(self, assignment_id: str, error: str, retryable: bool = True) -> None: ...

    async def heartbeat(self, agent_id: str) -> None: ...


class TaskRejected(Exception):
    """Raise from a handler to fail the assignment; ``retryable=False`` stops further attempts.
    Any other exception fails it as retryable."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class WorkerClient:
    def __init__(
        self,
        transport: WorkerTransport,
        agent_id: str,
        capabilities: Iterable[str] | None = None,
        poll_timeout_s: float = 30.0,
        concurrency: int = 1,
    ) -> None:
        self._transport = transport
        self.agent_id = agent_id
        self._capabilities = None if capabilities is None else tuple(capabilities)
        self._poll_timeout_s = poll_timeout_s
        self._concurrency = concurrency
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop polling; assignments already taken are finished first."""
        self._stopping.set()

    async def run(self, handler: Handler) -> None:
        """Poll and handle assignments, ``concurrency`` at a time, until ``stop()``."""
        self._stopping.clear()
        async with asyncio.TaskGroup() as group:
            for _ in range(self._concurrency):
                group.create_task(self._loop(handler))

    async def run_once(self, handler: Handler) -> bool:
        """Poll once and handle what arrives; False when nothing did."""
        assignment = await self._poll()
        if assignment is None:
            return False
        await self._handle(handler, assignment)
        return True

    async def _loop(self, handler: Handler) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once(handler)
            except Exception:  # the server may be restarting: keep trying, slowly
                log.exception("worker %s: poll failed", self.agent_id)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_ERROR_BACKOFF_S):
                        await self._stopping.wait()

    async def _poll(self) -> Assignment | None:
        poll = asyncio.ensure_future(
            self._transport.poll(self.agent_id, self._capabilities, self._poll_timeout_s)
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not poll.done():
                poll.cancel()
                await asyncio.wait({poll})
        # A poll that finished as stop() was called still returns its assignment.
        return None if poll.cancelled() else poll.result()

    async def _handle(self, handler: Handler, assignment: Assignment) -> None:
        try:
            output = await handler(assignment)
        except TaskRejected as exc:
            await self._transport.fail(assignment.id, str(exc), exc.retryable)
        except Exception as exc:  # a handler bug fails this assignment, not the worker
            log.exception("worker %s: assignment %s failed", self.agent_id, assignment.id)
            await self._transport.fail(assignment.id, f"{type(exc).__name__}: {exc}", True)
        else:
            await self._transport.complete(assignment.id, output)
