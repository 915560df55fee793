"""Whether the store takes work: the engine's "store unavailable" state and its backoff.

When the database is away (restarting, unreachable, disk full) every part of the engine that
touches it fails. They report here instead of logging on their own: the first failure of an
outage is logged once, readiness turns not-ready and ``engine_paused`` goes to 1. The sweeper
and the lease renewal then wait; the commit loop alone retries, with a bounded exponential
backoff (the store sends no notification when it comes back): the work it kept, or a probe
write when it kept none. Its first success ends the outage, so a read that works while writes
fail (a full disk) does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cadenza.domain import commands as cmd

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.05  # first retry after a failure
BACKOFF_MAX_S = 5.0  # retries never wait longer: the engine resumes within this of a recovery


@dataclass(frozen=True)
class StoreStatus:
    """Told to listeners on every failure (``available`` False) and on recovery (True)."""

    available: bool
    reason: str | None = None


StatusListener = Callable[[StoreStatus], None]
# work from outside the engine (API, CLI): refused while the store is unavailable, so callers
# get a clear error at once; the engine's own commands (results, timers, claims) wait instead
FROM_OUTSIDE = (cmd.StartInstance, cmd.SignalTask, cmd.CancelInstance, cmd.RetryInstance)


class StoreAvailability:
    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        max_s: float = BACKOFF_MAX_S,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._initial_s = initial_s
        self._max_s = max_s
        self._monotonic = monotonic
        self._reason: str | None = None  # the last failure's, while unavailable
        self._delay = initial_s
        self._since = 0.0
        self._recovered_at = -max_s  # a new outage soon after the last one keeps its backoff
        self._errors = 0  # failures in the current outage
        self._back = asyncio.Event()
        self._back.set()
        self._listeners: list[StatusListener] = []

    @property
    def available(self) -> bool:
        return self._reason is None

    @property
    def reason(self) -> str | None:
        """Why the store is unavailable (the last failure), else None."""
        return self._reason

    def subscribe(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def failed(self, exc: BaseException) -> None:
        """An operation found the store unavailable; the work it had is kept, not dropped."""
        reason = str(exc) or type(exc).__name__
        if self._reason is None:
            self._since = self._monotonic()
            self._errors = 0
            self._back.clear()
            if self._since - self._recovered_at > self._max_s:  # not a flapping store
                self._delay = self._initial_s
            log.error(
                "store unavailable (%s): the engine takes no new work and retries with backoff "
                "(at most %gs apart) until the store is back",
                reason,
                self._max_s,
            )
        self._reason = reason
        self._errors += 1
        log.debug("store still unavailable: %s", reason)
        self._tell(StoreStatus(False, reason))

    def recovered(self) -> None:
        """A write went through: the outage, if any, is over."""
        if self._reason is None:
            return
        self._reason = None
        self._recovered_at = self._monotonic()
        self._back.set()
        log.warning(
            "store available again after %.1fs (%d failed attempts): the engine resumes",
            self._recovered_at - self._since,
            self._errors,
        )
        self._tell(StoreStatus(True))

    async def backoff(self) -> None:
        """Wait before the next retry: ``initial_s``, doubling per wait, at most ``max_s``;
        back to ``initial_s`` for an outage that begins more than ``max_s`` after the last."""
        delay = self._delay
        self._delay = min(delay * 2, self._max_s)
        await self._sleep(delay)

    async def wait_available(self) -> None:
        await self._back.wait()

    def _tell(self, status: StoreStatus) -> None:
        for listener in self._listeners:
            try:
                listener(status)
            except Exception:  # an observer's bug must not stop the engine
                log.exception("store status listener failed")
