"""The workspace-deletion job: for every workspace in state ``deleting``, cancel its unfinished
instances through the engine's normal cancel path, delete what it owned in short batches,
remove its blobs (the hook), then its row (docs/workspaces.md).

It runs in one process at a time, as the duty of leader lease ``workspace-deletion``
(``application.leadership``; ``cadenza agents`` and ``cadenza serve`` stand for it, like
lease ``retention``). Each batch is its own transaction; the job pauses ``pause_s`` between
two, so the engine's commits interleave with it. A crash (or a lost lease) between batches
loses nothing: the totals are stored with each batch and the next holder goes on where the
batches stopped. A workspace whose instances are still being cancelled is looked at again
after ``recheck_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from cadenza.application.audit_ports import AuditEntry
from cadenza.application.failpoints import crash_point
from cadenza.application.outage_log import OutageLog
from cadenza.application.ports import Clock, StoreConflict
from cadenza.application.ports_workspaces import (
    DeletionRequest,
    NoBlobs,
    WorkspaceBlobs,
    WorkspaceDeletionStore,
)

log = logging.getLogger(__name__)

DELETION_LEASE = "workspace-deletion"
CRASH_POINT = "mid-workspace-deletion"  # a batch committed, the next one not started
Cancel = Callable[[str, str], Awaitable[object]]  # (instance id, reason): the engine's cancel


@dataclass(frozen=True)
class DeletionSettings:
    interval_s: float = 30.0  # how often the job looks for requests made in other processes
    batch: int = 500  # instances (with their rows), or rows of one table, per transaction
    pause_s: float = 0.05  # between two batches
    recheck_s: float = 1.0  # while a deletion waits for its instances to be cancelled


def _noop(*_: object) -> None:
    return None


class WorkspaceDeletionJob:
    def __init__(
        self,
        store: WorkspaceDeletionStore,
        clock: Clock,
        settings: DeletionSettings,
        cancel: Cancel,
        *,
        blobs: WorkspaceBlobs | None = None,
        removed: Callable[[str], Awaitable[None]] | None = None,
        on_batch: Callable[[Mapping[str, int]], None] = _noop,
        on_done: Callable[[str, Mapping[str, int]], None] = _noop,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings
        self._cancel = cancel
        self._blobs = blobs or NoBlobs()
        self._removed = removed  # caches of the workspace's agents: dropped everywhere
        self._on_batch = on_batch
        self._on_done = on_done
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._outage = OutageLog(log, "workspace deletion round")

    def wake(self) -> None:
        """Look now (a request was just made in this process)."""
        self._wake.set()

    async def run(self) -> None:
        """The duty the lease guards: until cancelled."""
        while True:
            self._wake.clear()
            pending = False
            with self._outage.round():  # a store away: the next round tries again
                pending = await self.run_once()
            wait = self.settings.recheck_s if pending else self.settings.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def run_once(self) -> bool:
        """One pass over every workspace being deleted; True when one is not done yet."""
        pending = False
        for request in await self._store.deleting():
            if not await self.drain(request):
                pending = True
        return pending

    async def drain(self, request: DeletionRequest) -> bool:
        """Everything of one workspace that can go now; True when its row is gone too."""
        ws = request.workspace_id
        await self._cancel_unfinished(request)
        while True:
            try:
                counts = await self._store.purge(ws, self.settings.batch)
            except StoreConflict as exc:  # a deadlock victim, rolled back whole
                log.warning("workspace %s: a deletion batch lost a conflict: %s", ws, exc)
                return False
            if not counts:
                break
            self._on_batch(counts)
            crash_point(CRASH_POINT)
            await self._sleep(self.settings.pause_s)  # the engine's commits go first
        blobs = await self._blobs.delete_workspace_blobs(ws)
        totals = await self._store.finish(ws, lambda rows: self._entry(request, rows, blobs))
        if totals is None:
            return False
        self._on_done(ws, totals)
        if self._removed is not None:
            try:
                await self._removed(ws)
            except Exception as exc:  # the caches refresh on their own anyway
                log.warning("workspace %s deleted; caches not told: %s", ws, exc)
        rows = ", ".join(f"{t}={n}" for t, n in sorted(totals.items()) if n)
        log.info("workspace %s (%s) deleted: %s", ws, request.name, rows or "no rows")
        return True

    async def _cancel_unfinished(self, request: DeletionRequest) -> None:
        """Ask the engine to cancel what still runs (workers stop it as for any cancel);
        a purge batch takes an instance only once it is finished."""
        why = f"workspace {request.workspace_id} is being deleted"
        for instance_id in await self._store.unfinished(request.workspace_id, self.settings.batch):
            try:
                await self._cancel(instance_id, why)
            except Exception as exc:  # finished meanwhile, or already cancelling
                log.debug("cancel %s for workspace deletion: %s", instance_id, exc)

    def _entry(self, request: DeletionRequest, rows: Mapping[str, int], blobs: int) -> AuditEntry:
        return AuditEntry(
            at=self._clock.now(),
            actor_type="system",
            actor_id=None,
            actor_name=DELETION_LEASE,
            workspace_id=request.workspace_id,
            action="workspace.deleted",
            target_type="workspace",
            target_id=request.workspace_id,
            request_id=None,
            client_ip=None,
            outcome="ok",
            before={"name": request.name},
            after={
                "requested_by": request.requested_by,
                "requested_at": request.requested_at,
                "deleted": dict(rows),
                "blobs": blobs,
            },
        )
