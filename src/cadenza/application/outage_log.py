"""How a periodic duty logs a failed round: a database outage once, a bug every time.

The duties that run beside the engine (agent health checks and assignment bookkeeping,
retention with its blob collection, workspace deletion, the runtime configuration reload, the
external-worker result watcher) each run a round, wait, and run the next. While the database is
away every round fails the same way; a traceback per round says nothing new and buries the
rest of the log. ``OutageLog.round()`` wraps one round:

* the store is unavailable: one ``WARNING`` when the outage begins (no traceback), ``DEBUG``
  for each later failed round, one ``INFO`` when a round succeeds again;
* a conflict (a deadlock lost): a ``WARNING`` without traceback, the next round runs it again;
* anything else is a bug: logged with its traceback, every time.

The engine's own outage handling (``availability``) stays separate: it also pauses work and
drives readiness. The SQL repositories beside the store raise their driver's errors rather
than ``StoreUnavailable``; the composition root tells this module which of those are outages
(``recognise``), as it arms the fail points.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType

from cadenza.application.ports import StoreConflict, StoreUnavailable

Recognise = Callable[[BaseException], StoreUnavailable | None]
"""The ``StoreUnavailable`` an error means, or None when it is not an outage."""


def _none(exc: BaseException) -> StoreUnavailable | None:
    return None


_recognise: Recognise = _none


def recognise(classify: Recognise) -> None:
    """Count the errors ``classify`` names as outages too (the driver's, from bootstrap)."""
    global _recognise
    _recognise = classify


def as_outage(exc: BaseException) -> StoreUnavailable | None:
    """``exc`` as an outage of the store, or None when it is something else."""
    if isinstance(exc, StoreUnavailable):
        return exc
    return _recognise(exc)


class OutageLog:
    def __init__(
        self, log: logging.Logger, duty: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log
        self.duty = duty  # "agent health check", "retention run": starts each line
        self._clock = clock
        self._since: float | None = None  # when the current outage began; None: no outage
        self.failed_rounds = 0  # of the current (or last) outage

    @property
    def down(self) -> bool:
        return self._since is not None

    def round(self) -> OutageLog:
        """Around one round (``with log.round():``): its failure is logged as above and not
        raised (a cancel is)."""
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None:
            self.succeeded()
            return False
        if not isinstance(exc, Exception):  # a cancel, an exit: not ours to keep
            return False
        if isinstance(exc, StoreConflict):
            self._log.warning("%s lost a conflict; the next round runs again: %s", self.duty, exc)
            return True
        outage = as_outage(exc)
        if outage is None:
            self._log.error("%s failed", self.duty, exc_info=exc)
        else:
            self.unavailable(outage)
        return True

    def unavailable(self, exc: StoreUnavailable) -> None:
        if self._since is None:
            self._since, self.failed_rounds = self._clock(), 1
            self._log.warning(
                "%s paused: the store is unavailable (%s); trying again each round",
                self.duty,
                exc,
            )
            return
        self.failed_rounds += 1
        self._log.debug("%s failed again: the store is unavailable (%s)", self.duty, exc)

    def succeeded(self) -> None:
        if self._since is None:
            return
        took, self._since = self._clock() - self._since, None
        self._log.info(
            "%s resumed: the store is back after %.1fs (%d failed rounds)",
            self.duty,
            took,
            self.failed_rounds,
        )
