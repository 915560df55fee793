"""System-wide gauges are counted in the store at scrape time, at most once per interval."""

from __future__ import annotations

import asyncio

from cadenza.infrastructure.observability.gauges import SystemCounts, SystemGauges
from cadenza.infrastructure.observability.metrics import Metrics


class Counts:
    def __init__(self) -> None:
        self.calls = 0
        self.value = SystemCounts(2, 5, 1)
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self) -> SystemCounts:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("store away")
        return self.value


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def _value(m: Metrics, name: str) -> float | None:
    return m.registry.get_sample_value(name)


async def test_a_scrape_storm_costs_one_count_per_interval() -> None:
    m, counts, clock = Metrics(), Counts(), Clock()
    gauges = SystemGauges(m, counts, min_interval_s=5.0, clock=clock)
    counts.gate.clear()
    scrapes = [asyncio.create_task(gauges.refresh()) for _ in range(20)]
    await asyncio.sleep(0)
    counts.gate.set()
    await asyncio.gather(*scrapes)
    assert counts.calls == 1
    assert (_value(m, "process_instances_active"), _value(m, "cadenza_task_queue_depth")) == (
        2.0,
        5.0,
    )
    assert _value(m, "cadenza_agents_healthy") == 1.0
    counts.value = SystemCounts(0, 0, 0)
    clock.t += 4.9
    await gauges.refresh()
    assert counts.calls == 1
    clock.t += 0.1
    await gauges.refresh()
    assert counts.calls == 2
    assert _value(m, "process_instances_active") == 0.0


async def test_a_failed_count_keeps_the_gauges_and_is_tried_again_at_the_next_scrape() -> None:
    m, counts, clock = Metrics(), Counts(), Clock()
    gauges = SystemGauges(m, counts, min_interval_s=5.0, clock=clock)
    await gauges.refresh()
    clock.t += 5.0
    counts.fail = True
    await gauges.refresh()
    assert _value(m, "process_instances_active") == 2.0
    counts.fail = False
    counts.value = SystemCounts(1, 0, 0)
    await gauges.refresh()  # no interval wait after a failure
    assert counts.calls == 3
    assert _value(m, "process_instances_active") == 1.0
    assert await gauges.queue_depth() == 0


async def test_closing_ends_the_count_a_cancelled_scrape_left_running() -> None:
    # the count reads the store, which closes right after: it must not outlive the close
    counts = Counts()
    gauges = SystemGauges(Metrics(), counts)
    counts.gate.clear()
    scrape = asyncio.create_task(gauges.refresh())
    while counts.calls == 0:  # the count has started (one loop turn)
        await asyncio.sleep(0)
    scrape.cancel()
    await asyncio.gather(scrape, return_exceptions=True)
    running = gauges._running
    assert running is not None
    assert not running.done()  # shielded: the scrape's cancel left it running
    await gauges.aclose()
    assert running.cancelled()
    await gauges.aclose()  # nothing left to end
