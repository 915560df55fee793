"""Dashboard time series: the Prometheus metrics sampled every few seconds into a ring buffer.

Each sample reads the same collectors ``/metrics`` exposes: rates are counter deltas over the
interval, percentiles are interpolated from the histogram buckets' deltas the way Prometheus'
``histogram_quantile`` does (so they are only as fine as the buckets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from cadenza.infrastructure.observability.metrics import Metrics

log = logging.getLogger(__name__)
INTERVAL_S = 5.0
WINDOW_S = 3600.0

Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), ascending, ends at +Inf


@dataclass(frozen=True)
class Sample:
    t: float
    instances_active: float
    queue_depth: float | None
    task_rate: float | None  # finished task attempts per second over the interval
    task_latency_p50: float | None
    task_latency_p95: float | None
    agent_response_p50: float | None


@dataclass
class _Totals:
    at: float
    tasks: float
    task_buckets: Buckets
    agent_buckets: Buckets


def counter_total(counter: Counter) -> float:
    """The sum of a counter over all its labels."""
    return sum(
        s.value for family in counter.collect() for s in family.samples if s.name.endswith("_total")
    )


def histogram_buckets(histogram: Histogram) -> Buckets:
    """Cumulative bucket counts summed over all labels."""
    sums: dict[float, float] = {}
    for family in histogram.collect():
        for s in family.samples:
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                sums[le] = sums.get(le, 0.0) + s.value
    return sorted(sums.items())


def quantile(q: float, now: Buckets, before: Buckets | None = None) -> float | None:
    """The ``q`` quantile of the observations between two bucket snapshots (None if none)."""
    old = dict(before or ())
    cumulative = [(le, count - old.get(le, 0.0)) for le, count in now]
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):  # beyond the last finite bound: that bound is the best estimate
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


class SeriesSampler:
    """Samples ``metrics`` every ``interval_s`` into a ring of ``window_s`` (``start``/``stop``),
    refreshing the queue-depth gauge from ``queue_depth`` (a store count) first."""

    def __init__(
        self,
        metrics: Metrics,
        queue_depth: Callable[[], Awaitable[int]] | None = None,
        *,
        interval_s: float = INTERVAL_S,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._queue_depth = queue_depth
        self._depth_failing = False  # warned once until the store answers again
        self.interval_s = interval_s
        self.window_s = window_s
        self._clock = clock
        self._ring: deque[Sample] = deque(maxlen=max(1, int(window_s / interval_s)))
        self._last: _Totals | None = None
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> Sample:
        """Take one sample now (the loop calls this; tests call it directly)."""
        m = self._metrics
        depth: float | None = None
        if self._queue_depth is not None:
            try:
                depth = float(await self._queue_depth())
                m.set_queue_depth(int(depth))
                self._depth_failing = False
            except Exception as exc:  # the store may be briefly unreachable: a gap, not a crash
                if not self._depth_failing:
                    log.warning("queue depth unavailable (until it answers again): %r", exc)
                self._depth_failing = True
        totals = _Totals(
            self._clock(),
            counter_total(m.task_executions),
            histogram_buckets(m.task_duration),
            histogram_buckets(m.agent_response),
        )
        last, self._last = self._last, totals
        rate = None
        if last is not None and totals.at > last.at:
            rate = max(0.0, totals.tasks - last.tasks) / (totals.at - last.at)
        before_tasks = last.task_buckets if last else None
        sample = Sample(
            t=totals.at,
            instances_active=_gauge(m),
            queue_depth=depth,
            task_rate=rate,
            task_latency_p50=quantile(0.5, totals.task_buckets, before_tasks),
            task_latency_p95=quantile(0.95, totals.task_buckets, before_tasks),
            agent_response_p50=quantile(
                0.5, totals.agent_buckets, last.agent_buckets if last else None
            ),
        )
        self._ring.append(sample)
        return sample

    def series(self) -> dict[str, object]:
        """The window as columns: ``t`` (epoch seconds) and one list per series."""
        samples: Sequence[Sample] = list(self._ring)
        columns: dict[str, list[float | None]] = {
            name: [getattr(s, name) for s in samples] for name in _SERIES
        }
        return {
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "t": [s.t for s in samples],
            "series": columns,
        }

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # a sampling bug must not end the series
                log.exception("metrics sample failed")
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="metrics-series")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_SERIES = (
    "instances_active",
    "queue_depth",
    "task_rate",
    "task_latency_p50",
    "task_latency_p95",
    "agent_response_p50",
)


def _gauge(m: Metrics) -> float:
    value = m.registry.get_sample_value("process_instances_active")
    return float(value or 0.0)
