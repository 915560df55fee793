"""The live event feed behind SSE, WebSocket and GraphQL subscriptions.

One pump per process reads newly committed events from the store's feed (woken by the
engine after each commit, by any message on a bus that crosses processes, and on a poll, the
fallback for events other processes commit) into a ring buffer. The store's feed stays the
source of order, resume and gap handling: a bus message only says "read now". Each
subscriber keeps its own cursor: it reads from the buffer when its cursor is inside it and
from the store otherwise, so a slow or resuming subscriber can neither lose nor duplicate
events, and a thousand subscribers cost one read per commit. Listeners (``subscribe``) hear
every entry the pump reads, whoever committed it: the tracer ends there the instance spans
this process opened for instances another process finished.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from cadenza.application.following import follow
from cadenza.application.ports import Clock, StoreUnavailable
from cadenza.application.ports_api import FeedCursor, FeedEntry, Queries
from cadenza.application.ports_bus import BusMessage, EventBus

log = logging.getLogger(__name__)
_Key = tuple[int, int]


class EventHub:
    def __init__(
        self,
        queries: Queries,
        clock: Clock,
        *,
        buffer: int = 20_000,
        poll_s: float = 1.0,
        gap_wait_s: float = 2.0,
        bus: EventBus | None = None,
        group: str = "feed",
    ) -> None:
        """``bus`` (not local): follow it with ``group``, which must be this process's own."""
        self._queries = queries
        self._clock = clock
        self._store_down = False  # the last read found the store unavailable
        self._keys: list[_Key] = []
        self._entries: list[FeedEntry] = []
        self._size = buffer
        self._poll_s = poll_s
        self._gap_wait_s = gap_wait_s
        self._head = FeedCursor(0, 0)
        self._floor: _Key = (0, 0)  # the buffer holds every entry after this key
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._gap_seen: dict[int, float] = {}
        self.gaps_passed = 0  # feed ids given up on after gap_wait_s (a warning each)
        self._bus = bus if bus is not None and not bus.local else None
        self._group = group
        self._listener: asyncio.Task[None] | None = None
        self._readers: list[Callable[[list[FeedEntry]], None]] = []

    def subscribe(self, reader: Callable[[list[FeedEntry]], None]) -> None:
        """Hand ``reader`` each batch of entries the pump reads (in commit order, each once,
        from the start on); it runs in the pump, so it must be quick and not block."""
        self._readers.append(reader)

    @property
    def head(self) -> FeedCursor:
        return self._head

    async def start(self) -> None:
        self._head = await self._queries.feed_head()
        self._floor = (self._head.feed_id, self._head.seq)
        self._task = asyncio.create_task(self._pump(), name="event-feed")
        if self._bus is not None:
            listen = follow(self._bus, self._group, self._on_message, on_open=self._wake.set)
            self._listener = asyncio.create_task(listen, name="event-feed-bus")

    def _on_message(self, _: BusMessage) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._changed.set()

    def notify(self, *_: object) -> None:
        """Called after each commit of this process's engine."""
        self._wake.set()

    async def _pump(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
            # the wake-up completes (gh-86296), and stopping the hub then waits for a second one
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await self._read_once():
                    pass
            except StoreUnavailable as exc:  # once per outage: the engine logs it too
                if not self._store_down:
                    log.warning("event feed paused: the store is unavailable (%s)", exc)
                self._store_down = True
                continue
            except Exception:
                log.exception("reading the event feed failed; retrying")
                continue
            if self._store_down:
                log.warning("event feed resumed")
                self._store_down = False

    async def _read_once(self) -> bool:
        entries = await self._queries.feed_after(self._head, 2000)
        accepted = self._contiguous(entries)
        if not accepted:
            return False
        for e in accepted:
            self._keys.append(e.key)
            self._entries.append(e)
        for reader in self._readers:
            try:
                reader(accepted)
            except Exception:  # a reader's bug must not stop the feed
                log.exception("event feed reader failed")
        if len(self._keys) > self._size * 3 // 2:  # trim in chunks: lists bisect in O(log n)
            cut = len(self._keys) - self._size
            self._floor = self._keys[cut - 1]
            del self._keys[:cut], self._entries[:cut]
        last = self._keys[-1]
        self._head = FeedCursor(*last)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return len(entries) == 2000 and len(accepted) == len(entries)

    def _contiguous(self, entries: list[FeedEntry]) -> list[FeedEntry]:
        """Entries up to the first gap in feed ids. A gap is a commit that took an id but is
        not visible yet (concurrent writers on PostgreSQL) or never will be (a rollback); we
        wait ``gap_wait_s`` for it before going past, so a late commit is not skipped."""
        out: list[FeedEntry] = []
        expect = self._head.feed_id
        now = self._clock.now()
        for e in entries:
            fid = e.feed_id
            if fid > expect + 1 and expect > 0:
                first = self._gap_seen.setdefault(expect + 1, now)
                if now - first < self._gap_wait_s:
                    break
                self._gap_seen.pop(expect + 1, None)
                self.gaps_passed += 1
                log.warning(
                    "event feed: feed ids %d-%d still missing after %.1f s, moving past them "
                    "(rolled back, or a commit slower than CADENZA_FEED_GAP_WAIT_S: its events "
                    "stay in history but are not streamed live)",
                    expect + 1,
                    fid - 1,
                    now - first,
                )
            out.append(e)
            expect = fid
        return out

    async def stream(
        self, after: FeedCursor | None, accept: Callable[[FeedEntry], bool]
    ) -> AsyncIterator[FeedEntry]:
        """Entries after ``after`` (``None``: from now on) that ``accept`` lets through,
        forever; every entry once and in commit order."""
        cursor: _Key = (
            (self._head.feed_id, self._head.seq)
            if after is None
            else (
                after.feed_id,
                after.seq,
            )
        )
        while True:
            changed = self._changed
            batch = await self._after(cursor)
            if not batch:
                if self._task is None:
                    return
                await changed.wait()
                continue
            for entry in batch:
                cursor = entry.key
                if accept(entry):
                    yield entry

    async def _after(self, cursor: _Key) -> list[FeedEntry]:
        if cursor >= self._floor:
            i = bisect.bisect_right(self._keys, cursor)
            return self._entries[i : i + 1000]
        if cursor > (self._head.feed_id, self._head.seq):
            return []
        older = await self._queries.feed_after(FeedCursor(*cursor), 1000)
        head = (self._head.feed_id, self._head.seq)
        return [e for e in older if e.key <= head]
