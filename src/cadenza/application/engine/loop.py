"""The engine: group-commits commands, then dispatches, wakes timers and tells listeners.

The commit loop is ``commit.GroupCommit`` (take every queued command -> one transaction ->
commit); after each commit ``_after_commit`` settles the callers' futures, dispatches leased
tasks to the local worker, wakes the sweeper for new timers and tells listeners. Nothing is
published before the commit.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from cadenza.application.audit_ports import AuditEntry
from cadenza.application.availability import (
    FROM_OUTSIDE,
    StoreAvailability,
    StoreStatus,
)
from cadenza.application.definitions import Definitions
from cadenza.application.engine.batch import Batch, BatchDeps
from cadenza.application.engine.commit import GroupCommit, Queued, settle
from cadenza.application.engine.handlers import Expected
from cadenza.application.engine.listeners import Listener, Listeners, TypesListener
from cadenza.application.engine.policy import LeaseTerms
from cadenza.application.engine.settings import EngineSettings
from cadenza.application.engine.sweeper import Sweeper
from cadenza.application.ports import (
    RELEASED,
    Clock,
    IdGenerator,
    Store,
    StoreUnavailable,
    Templates,
)
from cadenza.application.ports_bus import EventBus
from cadenza.application.ports_nodes import NodeExecutor
from cadenza.application.ports_obs import Tracer
from cadenza.application.secrets import SecretVault
from cadenza.application.work import Capacity
from cadenza.application.worker import Worker
from cadenza.domain import commands as cmd
from cadenza.domain.events import Event
from cadenza.domain.instance import Instance

log = logging.getLogger(__name__)


STOP_TIMEOUT_S = 10.0


class Engine:
    def __init__(
        self,
        store: Store,
        definitions: Definitions,
        templates: Templates,
        clock: Clock,
        new_id: IdGenerator,
        executors: Mapping[str, NodeExecutor],
        settings: EngineSettings,
        vault: SecretVault | None = None,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.clock = clock
        self.settings = settings
        self.capacity = Capacity(settings.capacity if settings.run_worker else 0)
        terms = LeaseTerms(
            settings.holder, settings.lease_s, settings.max_requeues, settings.max_crashes
        )
        deps = BatchDeps(
            definitions,
            templates,
            new_id,
            terms,
            self.capacity,
            settings.inline_pure,
            settings.inline_steps,
        )
        self._listeners = Listeners()
        self.availability = StoreAvailability()
        self._commit = GroupCommit(
            store, clock, deps, self.availability, settings.max_batch, self._after_commit
        )
        self.availability.subscribe(self._on_store_status)
        self.sweeper = Sweeper(
            self.submit_all, self.capacity, self.availability, settings, store, clock, new_id
        )
        self.worker = Worker(
            self.post, self.submit, executors, self.capacity, vault, self.sweeper.slot_freed
        )
        self.sweeper.worker_busy = lambda: bool(self.worker.running)
        self.worker.publish_live = self.publish_live
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._take_audit: Callable[[], AuditEntry | None] | None = None  # see use_audit

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._stopped = False
        self.worker.accepting = True
        self._tasks = [asyncio.create_task(self._commit.run(), name="engine-commit")]
        self._tasks.append(asyncio.create_task(self.sweeper.run(), name="engine-sweeper"))
        self._tasks.append(asyncio.create_task(self.sweeper.renew_leases(), name="engine-leases"))
        if self.sweeper.bus is not None:
            self._tasks.append(asyncio.create_task(self.sweeper.listen(), name="engine-bus"))

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._tasks[0].done()

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop gracefully: take no new work, give running tasks ``grace_s`` to finish and
        commit, abandon the rest, then stop the sweeper and the commit loop, and release the
        abandoned tasks' leases so another worker takes them over at once.

        Order matters: a sweeper cancelled while the commit loop is already gone would wait
        forever on commands nobody commits (a cancellation can be absorbed by a database
        call in flight, so the sweeper may go on after ``cancel()``).
        """
        self.worker.accepting = False
        if grace_s > 0:
            await self.worker.drain(grace_s)
        await self.worker.stop()
        await self._flush(deadline=time.monotonic() + 5.0)
        await _cancel_and_wait(self._tasks[1:])  # sweeper and lease renewal first
        await _cancel_and_wait(self._tasks[:1])  # then the commit loop
        self._tasks = []
        self._stopped = True
        pending, self._commit.inbox = self._commit.inbox, []
        for item in pending:
            settle(item.fut, RuntimeError("the engine stopped before this command committed"))
        if self.settings.run_worker:
            try:
                await self.store.renew(self.settings.holder, RELEASED)
            except Exception:  # the leases then expire on their own
                log.warning("could not release the leases of abandoned tasks", exc_info=True)

    async def _flush(self, deadline: float) -> None:
        """Let results that finished tasks posted commit (shutdown only)."""
        busy = self._commit
        while (busy.inbox or busy.committing) and self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def use_bus(self, bus: EventBus) -> None:
        """Before ``start``: when ``bus`` crosses processes, every commit writes its events
        to the outbox too (``relay`` publishes them) and the sweeper of a worker listens to
        it. The in-process bus changes nothing: no outbox, no listener."""
        if bus.local:
            return
        self._commit.deps = replace(self._commit.deps, outbox_by=self.settings.holder)
        if self.settings.run_worker:
            self.sweeper.bus = bus

    def use_tracer(self, tracer: Tracer) -> None:
        """Trace instances (joined to their starter's trace) and task attempts."""
        self.worker.tracer = tracer

    def use_audit(self, take: Callable[[], AuditEntry | None]) -> None:
        """Commit the audit rows of submitted commands with their change: ``submit`` takes
        the caller's pending entry (``audit.take_pending``, in the caller's context) and the
        batch saves it in its transaction when the command succeeds. Only for a store that
        writes ``Changes.audit`` (the SQL stores); without it the entry stays with the
        caller's ``Auditor.change``, which appends it after the command returned."""
        self._take_audit = take

    def _open_span(self) -> str | None:
        try:
            return self.worker.tracer.open_instance(contextvars.copy_context())
        except Exception:  # tracing must never stop a start
            log.exception("tracer failed")
            return None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.subscribe(listener)

    def subscribe_task_types(self, listener: TypesListener) -> None:
        """Told after each commit, before the events: the node type of every task the
        commit finished or retried (metrics label them with it)."""
        self._listeners.subscribe_task_types(listener)

    def publish_live(self, event: Event) -> None:
        """Hand a live-only event (streamed tokens) to listeners with seq 0; nothing is stored."""
        self._listeners.publish([(0, event)])

    # ---- commands ------------------------------------------------------------------------
    def post(self, command: cmd.Command) -> None:
        """Queue a command without waiting for it (worker results)."""
        self._commit.put(Queued(command))

    async def submit(self, command: cmd.Command) -> object:
        """Queue a command and wait until its batch committed: its ``handlers.Result`` (an
        ``Outcome``, a started instance's id, the claims adopted); expected errors are raised."""
        if self._stopped:
            raise RuntimeError("the engine is stopped")
        if isinstance(command, FROM_OUTSIDE) and not self.availability.available:
            raise StoreUnavailable(
                f"the store is unavailable ({self.availability.reason}); try again shortly"
            )
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        item = Queued(command, fut)
        if isinstance(command, cmd.StartInstance) and command.trace_context is None:
            item.span = self._open_span()
            if item.span is not None:  # stored with the instance: every process's tasks join it
                item.command = dataclasses.replace(command, trace_context=item.span)
        if self._take_audit is not None:  # here: the caller's context holds the entry
            item.audit = self._take_audit()
        self._commit.put(item)
        return await fut

    async def submit_all(self, commands: Sequence[cmd.Command]) -> object:
        """Queue ``commands`` in order and wait until the last one's batch committed (the
        ones before it are then committed or were reported as failed): one future for a
        page of timers or expired leases instead of one task and one future each. The last
        command's result; its expected error is raised."""
        if not commands:
            return None
        if self._stopped:
            raise RuntimeError("the engine is stopped")
        *first, last = commands
        self._commit.inbox.extend(Queued(c) for c in first)
        return await self.submit(last)

    async def wait_finished(self, instance_id: str) -> Instance:
        """Wait until the instance is completed, failed or cancelled (as committed)."""
        fut = self._listeners.waiter(instance_id)
        row = await self.store.get_instance(instance_id)
        if row is not None and row.status != "running" and not fut.done():
            events = [e for _, e in await self.store.journal(instance_id)]
            fut.set_result(Instance.replay(instance_id, events))
        return await fut

    def _on_store_status(self, status: StoreStatus) -> None:
        if not status.available:
            self._commit.wake.set()  # an idle commit loop probes the store until it is back

    def _after_commit(self, b: Batch, items: list[Queued], results: list[Expected]) -> None:
        for item, result in zip(items, results, strict=True):
            # before dispatch: the new instance's first tasks must find its span
            if item.span is not None and isinstance(result, str):
                try:
                    self.worker.tracer.instance_started(result, item.span)
                except Exception:  # tracing must never undo a commit
                    log.exception("tracer failed")
            settle(item.fut, result)
        for task_id in b.outcome.cancel_local:
            self.worker.cancel(task_id)
        for work in b.outcome.dispatch:
            self.worker.start(work)
        self.sweeper.wake_at(b.outcome.wakeups)
        if b.outcome.events:
            events = b.outcome.events
            types = b.uow.task_types(events) if self._listeners.wants_task_types else None
            self._listeners.publish(events, types)
        self._listeners.finished(b.outcome.finished)


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    # cancel again while a task goes on: a database call in flight may absorb one cancel
    pending = set(tasks)
    for _ in range(5):
        if not pending:
            return
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=STOP_TIMEOUT_S / 5)
    log.error("tasks did not stop: %s", [t.get_name() for t in pending])
