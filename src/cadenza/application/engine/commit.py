"""The group commit: queued commands committed together, one transaction per batch.

``GroupCommit.run`` takes every queued command (up to ``max_batch``) -> one transaction
(load, apply, decide, record) -> commit -> ``after_commit`` (the Engine settles the callers'
futures, dispatches leased tasks, tells listeners). Nothing is published before the commit.
A conflict runs the batch again from the start; a command that raises is isolated by running
the batch's commands one by one; an unavailable store keeps the engine's own work for after
the outage and refuses outside work at once.

A command from the API may carry its audit entry (``Queued.audit``): the batch saves it with
the command's change, in the same transaction, when the command succeeded; a command that
failed, or a batch rolled back, leaves no row, and a batch run again writes it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cadenza.application.audit import naming
from cadenza.application.audit_ports import AuditEntry
from cadenza.application.availability import FROM_OUTSIDE, StoreAvailability
from cadenza.application.engine.batch import Batch, BatchDeps
from cadenza.application.engine.handlers import Expected, apply_all
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.failpoints import crash_point
from cadenza.application.ports import Clock, Store, StoreConflict, StoreUnavailable
from cadenza.domain import commands as cmd

log = logging.getLogger(__name__)

CONFLICT_TRIES = 5  # a batch that conflicts this many times fails its callers


@dataclass(eq=False)
class Queued:
    """One command waiting for the commit loop, with what goes with it."""

    command: cmd.Command
    fut: asyncio.Future[object] | None = None  # the caller waiting (None: posted)
    span: str | None = None  # the tracer span opened for a StartInstance
    audit: AuditEntry | None = None  # the request's audit row, saved with the command's change


AfterCommit = Callable[[Batch, list[Queued], list[Expected]], None]


class StoreDown(Exception):
    """A batch met an unavailable store; ``items`` are the commands still to commit."""

    def __init__(self, cause: StoreUnavailable, items: list[Queued]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.items = items


def keep_after_outage(items: list[Queued], cause: StoreUnavailable) -> list[Queued]:
    """What to retry once the store is back: the engine's own commands. Outside callers are
    told at once, and callers that gave up (a cancelled future) are forgotten."""
    kept: list[Queued] = []
    for item in items:
        fut = item.fut
        if isinstance(item.command, FROM_OUTSIDE) and fut is not None:
            if not fut.done():
                fut.set_exception(cause)
        elif fut is None or not fut.done():
            kept.append(item)
    return kept


class GroupCommit:
    """The inbox of queued commands and the loop that commits them in batches."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        deps: BatchDeps,
        availability: StoreAvailability,
        max_batch: int,
        after_commit: AfterCommit,
    ) -> None:
        self.store = store
        self.clock = clock
        self.deps = deps
        self.availability = availability
        self.max_batch = max_batch
        self.after_commit = after_commit
        self.inbox: list[Queued] = []
        self.wake = asyncio.Event()
        self.committing = False  # a batch is between being taken and being settled
        self._cache: dict[str, Loaded] = {}

    def put(self, item: Queued) -> None:
        self.inbox.append(item)
        self.wake.set()

    async def run(self) -> None:
        """The commit loop: batches while there is work, a probe while the store is away."""
        while True:
            if not self.inbox:
                if not self.availability.available:
                    await self._probe()
                    continue
                self.wake.clear()
                await self.wake.wait()
                continue
            items = self.inbox[: self.max_batch]
            del self.inbox[: len(items)]
            self.committing = True
            try:
                await self.tick(items)
                self.availability.recovered()
            except StoreDown as down:  # keep the work, retry it when the store is back
                self.inbox[:0] = keep_after_outage(down.items, down.cause)
                self.availability.failed(down.cause)
                await self.availability.backoff()
            except Exception as exc:  # the loop must outlive any bug: callers get the error
                log.exception("group commit failed")
                for item in items:
                    settle(item.fut, exc)
            finally:
                self.committing = False

    async def _probe(self) -> None:
        """The store is unavailable and none of our work waits to commit: after a backoff,
        try a write (never at once, so a store that fails only other operations cannot make
        this loop spin)."""
        await self.availability.backoff()
        if self.inbox:
            return  # work to commit came meanwhile: it is the probe
        try:
            await self.store.probe()
        except StoreUnavailable as exc:
            self.availability.failed(exc)
        except Exception:  # a bug, not an outage: tried again after the next backoff
            log.exception("store probe failed")
        else:
            self.availability.recovered()

    async def tick(self, items: list[Queued]) -> None:
        """Commit ``items`` in one transaction (tried again on a conflict; a command that
        raises is isolated), then ``after_commit``."""
        for _ in range(CONFLICT_TRIES):
            b: Batch | None = None
            now = self.clock.now()
            try:
                async with self.store.transaction() as tx:
                    b = Batch(tx, self.deps, self._cache, now)
                    results = await apply_all(b, [item.command for item in items])
                    changes = b.finish()
                    changes.audit = audit_rows(items, results)
                    await tx.save(changes)
                    crash_point("after-journal-before-commit")
            except StoreConflict:
                _rolled_back(b)
                continue
            except StoreUnavailable as exc:
                _rolled_back(b)
                raise StoreDown(exc, items) from exc
            except Exception as exc:
                _rolled_back(b)
                if len(items) > 1:  # isolate the poisoned command
                    for i, item in enumerate(items):
                        try:
                            await self.tick([item])
                        except StoreDown as down:  # the ones before it are settled
                            raise StoreDown(down.cause, items[i:]) from exc
                    return
                log.exception("command %r failed", items[0].command)
                settle(items[0].fut, exc)
                return
            b.committed()
            crash_point("after-commit-before-dispatch")
            self.after_commit(b, items, results)
            return
        for item in items:
            settle(item.fut, StoreConflict("gave up after repeated conflicts"))


def audit_rows(items: Sequence[Queued], results: Sequence[Expected]) -> list[AuditEntry]:
    """The audit rows of the commands that did not fail (an expected error is refused: no
    change, no row); a start's row names the instance it created."""
    out: list[AuditEntry] = []
    for item, result in zip(items, results, strict=True):
        entry = item.audit
        if entry is None or isinstance(result, Exception):
            continue
        out.append(naming(entry, result) if isinstance(result, str) else entry)
    return out


def _rolled_back(b: Batch | None) -> None:
    if b is not None:
        b.rolled_back()


def settle(fut: asyncio.Future[object] | None, result: object) -> None:
    """Tell a caller its command's result (or error); nothing when it has gone."""
    if fut is None or fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
