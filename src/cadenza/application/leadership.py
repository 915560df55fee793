"""Run a duty in one process at a time: the holder of a leader lease runs it, the others stand
by (the agents service's health checks, lease ``agent-health``).

Timing, with ``lease_s`` = L and a tick of L/3 (``RENEWALS_PER_LEASE``):
- the holder renews every tick; a renewal the store refuses (the lease lapsed or was taken)
  stops the duty at once; one that fails (store away, or slower than the time left) keeps the
  duty only while more than a tick of the lease remains, so the duty stops at least a tick
  before the lease ends, and before any standby can take it over;
- a standby tries every tick, and also at the moment the lease it saw expires: it takes over
  at most one lease period after the holder's last renewal, so within one lease period of the
  holder's death (plus its own scheduling delay);
- ``stop`` ends the duty and releases the lease: a standby takes over on its next attempt.

``step`` is one decision, driven by ``run`` and, with a fake clock, by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cadenza.application.ports import Clock
from cadenza.application.ports_leases import LeaderLeases, LeaseView

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3  # the holder renews, and a standby retries, every lease_s / 3
MIN_WAIT_S = 0.01  # a standby never retries more often than this, even at the lease's expiry

Duty = Callable[[], Awaitable[None]]


class Leadership:
    def __init__(
        self,
        leases: LeaderLeases,
        name: str,
        holder: str,
        clock: Clock,
        lease_s: float,
        duty: Duty,
    ) -> None:
        self._leases = leases
        self.name = name
        self.holder = holder
        self._clock = clock
        self.lease_s = lease_s
        self.tick_s = lease_s / RENEWALS_PER_LEASE
        self._duty = duty
        self._task: asyncio.Task[None] | None = None
        self._until = 0.0  # the end of the lease this process last took or renewed
        self.seen: LeaseView | None = None  # the lease as the last attempt saw it

    @property
    def leader(self) -> bool:
        """True while the duty runs here (this process holds the lease)."""
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Hold the lease when possible and run the duty while holding it, until cancelled."""
        try:
            while True:
                await asyncio.sleep(await self.step())
        finally:
            await self.stop()

    async def step(self) -> float:
        """One attempt: renew (leader) or try to acquire (standby); seconds to the next."""
        if self._task is not None and self._task.done():
            self._duty_ended()
        if self._task is not None:
            await self._renew()
            return self.tick_s
        return await self._try_acquire()

    async def stop(self) -> None:
        """End the duty and release the lease (when held): a standby takes over at once."""
        was_leader = self._task is not None
        await self._end_duty()
        if was_leader:
            try:
                await self._leases.release(self.name, self.holder)
            except Exception:  # it then lapses on its own
                log.warning("could not release leader lease %r", self.name, exc_info=True)

    async def _try_acquire(self) -> float:
        now = self._clock.now()
        try:
            async with asyncio.timeout(self.tick_s):
                lease = await self._leases.try_acquire(self.name, self.holder, now, self.lease_s)
        except Exception as exc:  # store away or slow: stand by, try again next tick
            log.debug("leader lease %r: attempt failed: %s", self.name, exc)
            return self.tick_s
        self.seen = lease
        if not lease.held_by(self.holder, now):
            # also try the moment the holder's lease ends: a dead holder's is not renewed
            return max(MIN_WAIT_S, min(self.tick_s, lease.expires_at - now))
        self._until = lease.expires_at
        log.info("leader lease %r taken by %s: the duty starts here", self.name, self.holder)
        self._task = asyncio.create_task(self._run_duty(), name=f"leader-{self.name}")
        return self.tick_s

    async def _renew(self) -> None:
        now = self._clock.now()
        left = self._until - now - self.tick_s  # past that, the duty must have stopped
        renewed: bool | None = None
        if left > 0:
            try:
                async with asyncio.timeout(left):
                    renewed = await self._leases.renew(self.name, self.holder, now, self.lease_s)
            except Exception as exc:
                log.warning("leader lease %r: renewal failed: %s", self.name, exc)
        if renewed:
            self._until = now + self.lease_s
            return
        if renewed is False or self._until - self._clock.now() <= self.tick_s:
            why = "lost" if renewed is False else "not renewed in time"
            log.warning("leader lease %r %s: the duty stops here", self.name, why)
            await self._end_duty()

    async def _run_duty(self) -> None:
        await self._duty()

    def _duty_ended(self) -> None:
        """The duty returned or raised on its own: log it; the lease is kept, and the duty
        runs again on the next step, since a duty is meant to run for as long as it is held."""
        assert self._task is not None
        task, self._task = self._task, None
        if not task.cancelled() and task.exception() is not None:
            log.error("leader duty %r failed", self.name, exc_info=task.exception())
        self._task = asyncio.create_task(self._run_duty(), name=f"leader-{self.name}")

    async def _end_duty(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except Exception:
                log.exception("leader duty %r failed", self.name)
