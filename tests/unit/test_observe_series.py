"""The dashboard sampler: rates and percentiles from the Prometheus collectors, in a ring."""

from __future__ import annotations

import asyncio

import pytest

from cadenza.domain import events as ev
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.observability.series import SeriesSampler, quantile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _task_run(m: Metrics, task_id: str, seconds: float, at: float) -> None:
    scheduled = ev.TaskScheduled(
        instance_id="i",
        event_id=f"s{task_id}",
        occurred_at=at,
        task_id=task_id,
        scope="",
        node_id="n",
        node_type="transform",
        attempt=1,
        available_at=at,
    )
    completed = ev.TaskCompleted(
        instance_id="i",
        event_id=f"c{task_id}",
        occurred_at=at + seconds,
        task_id=task_id,
        attempt=1,
        output=None,
        ports=("out",),
        usage={"provider": "p", "model": "m", "latency_s": seconds},
    )
    m.on_events([(1, scheduled), (2, completed)])


def test_quantile_interpolates_within_a_bucket_like_prometheus() -> None:
    buckets = [(0.1, 0.0), (1.0, 10.0), (float("inf"), 10.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.55)
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    # all observations above the last finite bound: that bound is the estimate
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 4.0)]) == 1.0


def test_quantile_reads_only_the_observations_since_the_previous_snapshot() -> None:
    before = [(0.1, 100.0), (1.0, 100.0), (float("inf"), 100.0)]
    now = [(0.1, 100.0), (1.0, 110.0), (float("inf"), 110.0)]
    assert quantile(0.5, now, before) == pytest.approx(0.55)


async def test_samples_rate_latency_and_queue_depth() -> None:
    m, clock = Metrics(), Clock()
    depth = 7

    async def queue_depth() -> int:
        return depth

    sampler = SeriesSampler(m, queue_depth, interval_s=5, window_s=60, clock=clock)
    first = await sampler.sample()
    assert first.task_rate is None  # no interval yet
    assert first.task_latency_p50 is None
    assert m.registry.get_sample_value("cadenza_task_queue_depth") == 7.0
    for n in range(10):
        _task_run(m, f"t{n}", 0.3, at=clock.now)
    clock.now += 5
    second = await sampler.sample()
    assert second.task_rate == pytest.approx(2.0)  # 10 tasks in 5 s
    assert second.task_latency_p50 is not None
    assert 0.25 <= second.task_latency_p50 <= 0.5
    assert second.task_latency_p95 is not None
    assert 0.25 <= second.task_latency_p95 <= 0.5
    assert second.agent_response_p50 is not None
    assert 0.25 <= second.agent_response_p50 <= 0.5
    clock.now += 5
    third = await sampler.sample()
    assert third.task_rate == 0.0
    assert third.task_latency_p50 is None  # nothing finished in that interval


async def test_the_ring_keeps_one_window_as_columns() -> None:
    m, clock = Metrics(), Clock()
    sampler = SeriesSampler(m, interval_s=5, window_s=20, clock=clock)
    for _ in range(6):
        await sampler.sample()
        clock.now += 5
    out = sampler.series()
    assert out["interval_s"] == 5
    assert out["t"] == [1010.0, 1015.0, 1020.0, 1025.0]  # 20 s / 5 s = 4 samples, newest last
    series = out["series"]
    assert isinstance(series, dict)
    assert series["instances_active"] == [0.0] * 4
    assert series["queue_depth"] == [None] * 4  # no store to count from


async def test_an_unreachable_store_leaves_a_gap_not_a_crash() -> None:
    async def broken() -> int:
        raise OSError("database down")

    sample = await SeriesSampler(Metrics(), broken).sample()
    assert sample.queue_depth is None


def _times(sampler: SeriesSampler) -> list[float]:
    times = sampler.series()["t"]
    assert isinstance(times, list)
    return times


async def test_start_and_stop_run_the_loop() -> None:
    sampler = SeriesSampler(Metrics(), interval_s=0.01)
    await sampler.start()
    await sampler.start()  # idempotent
    for _ in range(100):
        if len(_times(sampler)) >= 2:
            break
        await asyncio.sleep(0.01)
    await sampler.stop()
    assert len(_times(sampler)) >= 2
