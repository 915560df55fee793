"""System-wide gauges, counted in the store: every process's ``/metrics`` says the same.

``process_instances_active`` (instances running), ``cadenza_task_queue_depth`` (tasks
scheduled, waiting for a worker) and ``cadenza_agents_healthy`` describe the whole deployment,
so they are not counted from the events one process committed: ``SystemGauges.refresh`` runs
one count query (three indexed counts in one round trip; the cost grows with the rows that are
active now, not with history) and sets them. ``/metrics`` awaits it before answering; at most
one query runs per ``min_interval_s``, and concurrent scrapes share the one in flight, so a
scrape storm costs one query per interval. Counters (``task_executions_total``,
``agent_response_time_seconds``, ...) stay per process: sum them over processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cadenza.infrastructure.observability.metrics import Metrics

log = logging.getLogger(__name__)
MAX_CAPABILITY_LABELS = 200  # capabilities exported per process (the first, sorted by name)


@dataclass(frozen=True)
class SystemCounts:
    instances_running: int
    tasks_queued: int
    agents_healthy: int
    # healthy agents per capability of the agents not draining (``capability_counts``)
    capabilities: Mapping[str, int] = field(default_factory=dict)


def capability_counts(agents: Iterable[tuple[str, Iterable[str]]]) -> dict[str, int]:
    """{capability: healthy agents having it} over (status, capabilities) of the registered
    agents; a draining agent is left out, so is every capability past the first
    ``MAX_CAPABILITY_LABELS`` in name order."""
    counts: dict[str, int] = {}
    for status, capabilities in agents:
        if status == "draining":
            continue
        for capability in capabilities:
            counts[capability] = counts.get(capability, 0) + (status == "healthy")
    return {c: counts[c] for c in sorted(counts)[:MAX_CAPABILITY_LABELS]}


CountSource = Callable[[], Awaitable[SystemCounts]]


class SystemGauges:
    """Sets the system-wide gauges of ``metrics`` from ``counts`` (see the module docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        counts: CountSource,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._counts = counts
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._refreshed_at: float | None = None
        self._running: asyncio.Task[None] | None = None
        self._failing = False  # warned once until the store answers again
        self.last: SystemCounts | None = None

    async def refresh(self) -> None:
        """Count now, unless counted less than ``min_interval_s`` ago; a failure leaves the
        gauges as they were (logged once), it never fails the scrape."""
        at = self._refreshed_at
        if at is not None and self._clock() - at < self._min_interval_s:
            return
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._refresh(), name="system-gauges")
        await asyncio.shield(self._running)

    async def aclose(self) -> None:
        """End the count in flight: a scrape cancelled while it ran leaves it running on its
        own, reading the store that is about to close (a connection taken after that close
        is never closed)."""
        task, self._running = self._running, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def queue_depth(self) -> int:
        """Refresh (as ``refresh``), then the queue depth (the dashboard's series sampler)."""
        await self.refresh()
        if self.last is None:
            raise LookupError("the store has not answered the gauge counts yet")
        return self.last.tasks_queued

    async def _refresh(self) -> None:
        try:
            counts = await self._counts()
        except Exception as exc:  # the store may be briefly unreachable: stale, not a crash
            if not self._failing:
                log.warning("system gauges unavailable (until the store answers): %r", exc)
            self._failing = True
            return
        self._failing = False
        self._refreshed_at = self._clock()
        self.last = counts
        self._metrics.set_system(
            counts.instances_running, counts.tasks_queued, counts.agents_healthy
        )
        self._metrics.set_capabilities(counts.capabilities)
