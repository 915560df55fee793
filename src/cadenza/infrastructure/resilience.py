"""Timeout, retry and circuit breaking for every provider and MCP call (DESIGN §6).

Retries use tenacity (maintained, typed, asyncio-native ``AsyncRetrying``). The circuit breaker
is our own small class rather than ``purgatory`` (3.0.1, last released 2024-11), because:

* purgatory's half-open state lets *every* concurrent request through; with hundreds of calls
  in flight on one provider that is a thundering herd against a service that just failed. Ours
  admits exactly one trial call.
* it reads ``time.time()`` (wall clock, not injectable), so tests must sleep for real and an NTP
  step can open or close a circuit; ours takes a monotonic, injectable clock.
* every use goes through ``await factory.get_breaker(name)`` and a unit-of-work / message-bus
  layer built for optional Redis sharing, which we do not need: breaker state is per process.
* what counts as a failure must follow our retry classification (a 400 proves the provider is
  up); here it is the retry policy's own predicate. The breaker is ~60 lines without I/O.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

import tenacity
from tenacity import RetryCallState

T = TypeVar("T")
_log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateListener = Callable[[str, BreakerState, BreakerState], None]


class CircuitOpenError(Exception):
    """The breaker refused the call; ``retry_after`` is when a trial call may be let through."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class Breaker:
    """One circuit: closed → open after ``threshold`` consecutive failures, open for
    ``reset_s``, then half-open with a single trial call that closes or re-opens it.

    Every state change is reported to ``on_change(name, old, new)`` (events and metrics).
    Keep one per provider/MCP server name. Not thread-safe: one event loop owns it, and no
    method awaits.
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        reset_s: float = 30.0,
        on_change: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_s = reset_s
        self._on_change = on_change
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def open_for(self) -> float:
        """Seconds the circuit stays open (0.0 when closed, half-open or due for a trial)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self._clock())

    def before_call(self) -> None:
        """Admit a call or raise CircuitOpenError; an expired open circuit goes half-open."""
        if self._state is BreakerState.OPEN:
            remaining = self._opened_at + self.reset_s - self._clock()
            if remaining > 0:
                raise CircuitOpenError(self.name, remaining)
            self._set(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._trial_in_flight:
                raise CircuitOpenError(self.name, self.reset_s)
            self._trial_in_flight = True

    def record_success(self) -> None:
        """The call reached a healthy provider (including answers such as 400)."""
        self._trial_in_flight = False
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """The call failed in a way that says the provider is unhealthy."""
        self._trial_in_flight = False
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
            self._opened_at = self._clock()
            if self._state is not BreakerState.OPEN:
                self._set(BreakerState.OPEN)

    def record_abandoned(self) -> None:
        """The call was cancelled: no verdict, but a half-open trial slot must be freed."""
        self._trial_in_flight = False

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if self._on_change is not None:
            self._on_change(self.name, old, new)


async def call_with_resilience(
    fn: Callable[[], Awaitable[T]],
    *,
    name: str,
    breaker: Breaker | None,
    is_retryable: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = lambda _exc: None,
    is_failure: Callable[[BaseException], bool] | None = None,
    timeout_s: float | None = 30.0,
    attempts: int = 3,
    initial_s: float = 0.1,
    max_s: float = 10.0,
) -> T:
    """Run ``fn`` with a per-attempt timeout, retries with exponential backoff and the breaker.

    ``timeout_s=None``: ``fn`` bounds each attempt itself (and classifies its own timeouts).

    A retryable failure (``is_retryable`` or an attempt timeout) is retried after
    ``max(backoff, Retry-After)``; a Retry-After above ``max_s`` is not slept through but
    raised, so the caller can reschedule instead of holding a worker. CircuitOpenError is
    never retried here. The last exception is re-raised unchanged.

    The breaker counts an attempt as failed when ``is_failure`` (default: ``is_retryable``)
    holds or it timed out; any other outcome proves the other side alive.
    """
    unhealthy = is_failure or is_retryable
    backoff = tenacity.wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s)

    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, CircuitOpenError):
            return False
        hint = retry_after(exc)
        return (isinstance(exc, TimeoutError) or is_retryable(exc)) and (hint or 0.0) <= max_s

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = retry_after(exc) if exc is not None else None
        return max(backoff(state), hint or 0.0)

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        _log.warning(
            "%s: attempt %d failed (%r); retrying in %.2fs", name, state.attempt_number, exc, sleep
        )

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(retryable),
        before_sleep=log_retry,
        reraise=True,
    )
    # Without a breaker, one that never opens keeps the loop free of None checks.
    gate = breaker if breaker is not None else Breaker(name, threshold=sys.maxsize)
    async for attempt in retrying:
        with attempt:
            gate.before_call()
            try:
                async with asyncio.timeout(timeout_s):
                    result = await fn()
            except asyncio.CancelledError:
                gate.record_abandoned()
                raise
            except Exception as exc:
                failed = isinstance(exc, TimeoutError) or unhealthy(exc)
                (gate.record_failure if failed else gate.record_success)()
                raise
            gate.record_success()
            return result
    raise AssertionError(f"{name}: retry loop ended without an outcome")  # pragma: no cover
