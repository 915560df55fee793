"""Consumers of a bus that crosses processes: another runtime's event hub reads what this one
committed as soon as the bus says so, and a worker claims a task an API process queued
without waiting for its sweep. Two runtimes on one database share one remote in-process bus,
as processes share Redis or Kafka; the polls and sweeps are set to an hour, so only the bus
can wake them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.bus_helpers import DEADLINE_S, runtime, start, until
from tests.pg import BACKENDS, backend_url

from cadenza.application.feed import EventHub
from cadenza.application.ports_bus import BusMessage
from cadenza.bootstrap import SystemClock
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.bus.memory import MemoryBus
from cadenza.infrastructure.sql.queries import SqlQueries

HOUR = 3600.0


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def test_a_second_runtime_sees_the_first_ones_events_through_its_hub(url: str) -> None:
    bus = MemoryBus(remote=True)
    first = await runtime(url, bus)
    second = await runtime(url, bus, run_worker=False)
    hub = EventHub(
        SqlQueries(second.database()), SystemClock(), poll_s=HOUR, bus=bus, group="feed:second"
    )
    await first.start()
    await second.start()
    await hub.start()
    try:
        await until(lambda: "feed:second" in bus.groups, "the hub's subscription")
        stream = hub.stream(hub.head, lambda _: True)  # from before the start
        iid = await start(first)
        await first.engine.wait_finished(iid)
        journal = await first.store.journal(iid)
        got: list[tuple[str, int]] = []
        async with asyncio.timeout(DEADLINE_S):  # a failure, not a hang, without the bus
            async for entry in stream:
                assert entry.event.instance_id == iid
                got.append((entry.event.type_name, entry.seq))
                if len(got) == len(journal):
                    break
        assert got == [(e.type_name, seq) for seq, e in journal]
    finally:
        await hub.stop()
        await second.close()
        await first.close()


async def test_a_worker_claims_a_task_an_api_process_queued_without_waiting_for_its_sweep(
    url: str,
) -> None:
    bus = MemoryBus(remote=True)
    # the transforms go to workers; the API process runs none, the worker sweeps hourly
    api = await runtime(url, bus, run_worker=False, engine_inline_pure=False)
    worker = await runtime(url, bus, engine_inline_pure=False, sweep_interval_s=HOUR)
    sweeper = worker.engine.sweeper
    sweeps = 0
    sweeping = False
    sweep_once = sweeper.sweep_once

    async def counted(now: float | None = None) -> None:
        nonlocal sweeps, sweeping
        sweeping = True
        try:
            await sweep_once(now)
        finally:
            sweeping = False
            sweeps += 1

    sweeper.sweep_once = counted  # type: ignore[method-assign]
    await api.start()
    await worker.start()
    try:
        group = f"sweeper:{worker.engine.settings.holder}"
        # the worker subscribed, swept at start and now sleeps for the hour
        await until(
            lambda: (
                group in bus.groups and sweeps >= 1 and not sweeping and not sweeper._wake.is_set()
            ),
            "the worker's sweeper to sleep",
        )
        before = sweeps
        iid = await start(api, 20)
        async with asyncio.timeout(DEADLINE_S):  # a failure, not a hang, without the bus
            finished = await worker.engine.wait_finished(iid)
        assert finished.outputs == {"n": 42}
        assert sweeps > before  # woken by the bus: the hour has not passed
    finally:
        await worker.close()
        await api.close()


async def test_a_worker_wakes_at_the_time_another_process_set_and_not_for_its_own_commits(
    tmp_path: Path,
) -> None:
    worker = await runtime(f"sqlite:///{tmp_path}/w.db", MemoryBus(remote=True))
    sweeper = worker.engine.sweeper
    at = SystemClock().now() + HOUR
    try:
        own: JSONObject = {
            "workspace_id": "default",
            "wake_at": at,
            "by": worker.engine.settings.holder,
        }
        sweeper._on_message(BusMessage("TaskWaiting", "i1", "default", 3, 0.0, own))
        assert sweeper._deadlines == []  # its own commit woke it already
        other: JSONObject = {**own, "by": "api-1/abc"}
        sweeper._on_message(BusMessage("TaskWaiting", "i2", "default", 3, 0.0, other))
        assert sweeper._deadlines == [at]
    finally:
        await worker.close()
