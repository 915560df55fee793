"""Recovery and time: fire due timers, re-queue expired leases, claim queued tasks.

It sleeps until the earliest known deadline (or the sweep interval, for deadlines set by
other processes) and is woken early when a worker slot frees while tasks are queued. With a
bus that crosses processes it also listens to it (``listen``): a task another process left
queued is claimed at once, a timer it set wakes this sweeper at its time, instead of at the
next sweep. Due timers are claimed (``Store.claim_timers``), so of many workers' sweepers
one fires each; a claim another sweeper took and never fired (it died) ends after
``EngineSettings.timer_claim_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from cadenza.application.availability import StoreAvailability, StoreStatus
from cadenza.application.engine.settings import EngineSettings
from cadenza.application.failpoints import crash_point
from cadenza.application.following import follow
from cadenza.application.ports import (
    Clock,
    IdGenerator,
    Store,
    StoreConflict,
    StoreUnavailable,
    Timer,
)
from cadenza.application.ports_bus import BusMessage, EventBus
from cadenza.application.work import Capacity
from cadenza.domain import commands as cmd
from cadenza.domain.timers import TimerKind

log = logging.getLogger(__name__)
PAGE = 10_000
# slots a claim reserves while it runs; small so eager leases of the commit loop still find room
CLAIM_PAGE = 500


# queue commands in order and wait for the last one's commit (``Engine.submit_all``)
Submit = Callable[[Sequence[cmd.Command]], Awaitable[object]]


class Sweeper:
    """Given the engine's ``submit``, the worker's capacity and the store's availability
    (never the engine itself): it turns what is due in the store into commands."""

    def __init__(
        self,
        submit: Submit,
        capacity: Capacity,
        availability: StoreAvailability,
        settings: EngineSettings,
        store: Store,
        clock: Clock,
        new_id: IdGenerator,
    ) -> None:
        self._submit = submit
        self._capacity = capacity
        self._availability = availability
        self._settings = settings
        self._store = store
        self._clock = clock
        self._new_id = new_id
        self._deadlines: list[float] = []
        self._wake = asyncio.Event()
        self._queued = True  # there may be queued tasks to claim
        self._lapsed = False  # the store was away: our leases may have lapsed meanwhile
        self._unfired: list[Timer] = []  # timers claimed whose firing failed: fired next sweep
        # whether the local worker runs tasks now (its leases are worth renewing); the engine
        # sets it once its worker exists
        self.worker_busy: Callable[[], bool] = lambda: False
        self.bus: EventBus | None = None  # set by ``Engine.use_bus`` when it crosses processes
        # also told each fresh bus message (the tracer ends spans of instances ended elsewhere)
        self.heard: list[Callable[[BusMessage], None]] = []
        availability.subscribe(self._on_store_status)

    def _on_store_status(self, status: StoreStatus) -> None:
        if not status.available:
            self._lapsed = True

    def wake_at(self, times: Iterable[float]) -> None:
        now = self._clock.now()
        for t in times:
            if t <= now:
                self._queued = True
                self._wake.set()
            else:
                heapq.heappush(self._deadlines, t)
        if self._deadlines and self._deadlines[0] <= now + 0.001:
            self._wake.set()
        elif times:
            self._wake.set()  # recompute the sleep: a new deadline may be the earliest

    async def listen(self) -> None:
        """Wake for what other processes commit (``wake_at`` of their outbox rows), with a
        group of this process's own; each (re)subscription sweeps once for what was missed."""
        if self.bus is not None:
            holder = self._settings.holder
            await follow(self.bus, f"sweeper:{holder}", self._on_message, on_open=self._missed)

    def _on_message(self, message: BusMessage) -> None:
        at = message.data.get("wake_at")
        if isinstance(at, int | float) and message.data.get("by") != self._settings.holder:
            self.wake_at([float(at)])  # our own commits woke us already
        for hear in self.heard:
            try:
                hear(message)
            except Exception:  # a listener's bug must not stop the wake-ups
                log.exception("bus message listener failed")

    def _missed(self) -> None:
        self._queued = True
        self._wake.set()

    def slot_freed(self) -> None:
        if self._queued:
            self._wake.set()

    async def renew_leases(self) -> None:
        """Renew this worker's leases every third of the lease; a paused worker loses them."""
        settings = self._settings
        while True:
            await asyncio.sleep(settings.lease_s / 3)
            if self.worker_busy() and self._availability.available:
                try:
                    await self._store.renew(settings.holder, self._clock.now() + settings.lease_s)
                except StoreUnavailable as exc:  # the sweeper renews them when it is back
                    self._availability.failed(exc)
                except StoreConflict as exc:  # lost to a commit's row locks, tries and all
                    log.warning("lease renewal lost a conflict; next tick renews: %s", exc)
                except Exception:  # retried at the next tick; the lease still has two thirds
                    log.exception("lease renewal failed")

    async def run(self) -> None:
        await self._release_own_leases()
        while True:
            # no new work while the store is away: the commit loop tells when it is back
            await self._availability.wait_available()
            # cleared before the sweep, not after it: a wake-up or a deadline that arrives while
            # sweeping (timers committed meanwhile) must cause the next sweep, not be dropped
            self._wake.clear()
            swept_at = self._clock.now()
            try:
                await self.sweep_once(swept_at)
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:  # swept again once the store is back
                self._availability.failed(exc)
                continue
            except StoreConflict as exc:  # a claim lost a deadlock (MySQL): sweep again
                log.warning("sweep lost a conflict, again at the next tick: %s", exc)
                self._wake.set()
            except Exception:  # a bug: try again next tick
                log.exception("sweep failed")
            await self._sleep(swept_at)

    async def _renew_lapsed(self, now: float) -> None:
        """After an outage, renew the leases of tasks still running here before expiring
        leases: they lapsed because the store was away, not because this worker was."""
        if self._lapsed:
            if self.worker_busy():
                settings = self._settings
                await self._store.renew(settings.holder, now + settings.lease_s)
            self._lapsed = False

    async def _sleep(self, swept_at: float) -> None:
        while self._deadlines and self._deadlines[0] <= swept_at:  # that sweep saw them due
            heapq.heappop(self._deadlines)
        delay = self._settings.sweep_interval_s
        if self._deadlines:
            delay = min(delay, max(0.0, self._deadlines[0] - self._clock.now()))
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as the
        # wake-up completes (gh-86296), and a stopping engine then waits for its next cancel
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _release_own_leases(self) -> None:
        """A restarted worker with the same identity no longer runs what its previous
        incarnations held: their leases are released (not expired: the tasks are not charged
        a requeue for it). Leases this incarnation took meanwhile stay."""
        settings = self._settings
        await self._store.release_previous(settings.owner, settings.holder)

    async def sweep_once(self, now: float | None = None) -> None:
        now = self._clock.now() if now is None else now
        await self._fire_timers(now)
        await self._renew_lapsed(now)
        expired = await self._store.expired_leases(now, PAGE)
        if expired:
            await self._submit(
                [cmd.ExpireLease(x.instance_id, x.task_id, x.lease_token or "") for x in expired]
            )
            crash_point("during-sweeper-requeue")
        await self._claim(now)

    async def _fire_timers(self, now: float) -> None:
        """Claim due timers (other sweepers skip them for ``timer_claim_s``) and fire them.
        A page whose firing failed is fired again at the next sweep, first: its claims are
        still ours, or ended (firing twice is harmless: the second finds the timer gone)."""
        retry, self._unfired = self._unfired, []
        while True:
            timers = retry or await self._store.claim_timers(
                self._settings.holder, now, PAGE, self._settings.timer_claim_s
            )
            if timers:
                self._unfired = timers
                await self._submit(
                    [
                        cmd.FireTimer(t.instance_id, t.id, t.task_id, TimerKind(t.kind))
                        for t in timers
                    ]
                )
                self._unfired = []
            if not retry and len(timers) < PAGE:
                return
            retry = []

    async def _claim(self, now: float) -> None:
        capacity = self._capacity
        settings = self._settings
        while capacity.free > 0:
            want = min(capacity.free, CLAIM_PAGE)
            capacity.reserve(want)
            try:
                leases = await self._store.claim(
                    settings.holder, want, now, settings.lease_s, self._new_id
                )
            except BaseException:  # nothing claimed: the reserved slots are free again
                capacity.give_back(want)
                raise
            capacity.give_back(want - len(leases))
            self._queued = len(leases) == want
            if not leases:
                return
            claims = tuple(
                (
                    x.instance_id,
                    x.task_id,
                    x.lease_token or "",
                    x.attempt,
                    x.lease_expires_at or 0.0,
                )
                for x in leases
            )
            try:
                await self._submit([cmd.RecordClaims(claims)])
            except BaseException:  # not recorded: the slots reserved for these are free again
                capacity.give_back(len(leases))
                raise
            if len(leases) < want:
                return
