"""The outbox relay: committed events leave the process through the bus, never before commit.

When the bus crosses processes (``EventBus.local`` is false), each group commit writes one
outbox row per event in its transaction (``UnitOfWork``); the relay publishes them in id
order and deletes them (``Store.relay_outbox``: one transaction, so a publish that fails
leaves them). It runs after each local commit (the engine's listener) and on a slow poll
(``poll_s``) for rows a crashed process left behind. Several relays (one per process) share
the outbox. Delivery is at least once: a crash between publishing and deleting
(``mid-outbox-relay``) publishes the rows again; consumers deduplicate (``dedupe``).

While the bus is unavailable the rows stay; the relay tries again after a backoff that
doubles from ``BACKOFF_FIRST_S`` up to ``BACKOFF_MAX_S`` and reports why (``down``, for
readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from cadenza.application.failpoints import crash_point
from cadenza.application.ports import OutboxRow, Store, StoreConflict, StoreUnavailable
from cadenza.application.ports_bus import BusMessage, BusUnavailable, EventBus
from cadenza.domain.events import Event

log = logging.getLogger(__name__)

PAGE = 500  # rows per relay transaction
BACKOFF_FIRST_S = 0.1  # first wait after the bus or the store failed ...
BACKOFF_MAX_S = 5.0  # ... doubling up to this
BUSY_RETRY_S = 0.01  # another relay holds older rows: look again this soon ...
BUSY_TRIES = 50  # ... this many times, then leave them to it (and to the poll)
CONFLICT_PAUSE_S = 0.02  # a pass that lost a deadlock (MySQL) runs again after this pause


def message_of(row: OutboxRow) -> BusMessage:
    workspace = row.data.get("workspace_id")
    return BusMessage(
        row.type,
        row.instance_id,
        workspace if isinstance(workspace, str) else "default",
        row.seq,
        row.created_at,
        row.data,
    )


class Relay:
    def __init__(self, store: Store, bus: EventBus, *, poll_s: float = 1.0, page: int = PAGE):
        self._store = store
        self._bus = bus
        self._poll_s = poll_s
        self._page = page
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0  # messages handed to the bus (a republished one counts again)
        self.backlog = 0  # outbox rows left, as of the last poll or failure
        self.down: str | None = None  # why the last pass failed; None: it did not
        # told after each pass: (messages published since the last call, backlog), for metrics
        self.on_pass: Callable[[int, int], None] = lambda published, backlog: None
        self._reported = 0

    def notify(self, events: list[tuple[int, Event]]) -> None:
        """The engine committed (its listener): relay now. Live-only events (seq 0) are
        not in the outbox."""
        if any(seq for seq, _ in events):
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop, then try one last pass so a graceful stop leaves nothing for the poll of
        another process (rows it cannot publish now stay for them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            try:
                await self.relay_once()
            except Exception as exc:  # left for the next relay to start (or another process)
                log.warning("outbox rows left at stop (%s: %s)", type(exc).__name__, exc)

    async def run(self) -> None:
        backoff = 0.0
        while True:
            polled = False
            if backoff:  # failing: commits do not cut the backoff short
                await asyncio.sleep(backoff)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):
                        await self._wake.wait()
                polled = not self._wake.is_set()
            self._wake.clear()
            try:
                await self.relay_once()
                if polled or backoff:
                    self.backlog = await self._store.outbox_backlog()
            except (BusUnavailable, StoreUnavailable) as exc:
                if self.down is None:
                    log.warning("outbox relay paused: %s (%s)", type(exc).__name__, exc)
                self.down = f"{type(exc).__name__}: {exc}"
                backoff = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, backoff * 2))
                with contextlib.suppress(StoreUnavailable):
                    self.backlog = await self._store.outbox_backlog()
                self._report()
                continue
            except StoreConflict as exc:  # lost a deadlock: rolled back, the rows stay
                log.warning("outbox relay pass lost a conflict, again: %s", exc)
                await asyncio.sleep(CONFLICT_PAUSE_S)
                self._wake.set()  # published rows go again: consumers drop duplicates
                continue
            except Exception:  # a bug: try again at the next wake-up or poll
                log.exception("outbox relay failed")
                continue
            if self.down is not None:
                log.warning("outbox relay resumed")
            self.down = None
            backoff = 0.0
            self._report()

    def _report(self) -> None:
        published, self._reported = self.published - self._reported, self.published
        try:
            self.on_pass(published, self.backlog)
        except Exception:  # metrics must never stop the relay
            log.exception("relay metrics failed")

    async def relay_once(self) -> int:
        """Relay until the outbox is empty (or another relay holds its oldest rows): the
        number of rows published. Raises ``BusUnavailable`` / ``StoreUnavailable``."""
        total = 0
        busy = 0
        while True:
            n = await self._store.relay_outbox(self._page, self._publish)
            if n is None:
                busy += 1
                if busy >= BUSY_TRIES:
                    return total
                await asyncio.sleep(BUSY_RETRY_S)
                continue
            total += n
            if n < self._page:
                self.backlog = 0
                return total

    async def _publish(self, rows: Sequence[OutboxRow]) -> None:
        await self._bus.publish([message_of(r) for r in rows])
        self.published += len(rows)
        crash_point("mid-outbox-relay")  # published, not yet deleted: published again
