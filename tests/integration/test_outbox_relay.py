"""The transactional outbox and its relay: rows written with the events (only when the bus
crosses processes), published in order and deleted, kept while the bus is down, and
published again, never lost, after a crash between publishing and deleting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.integration.bus_helpers import Collector, runtime, start, until, until_backlog_empty
from tests.pg import BACKENDS, STORES, backend_url

from cadenza.application.ports import Changes, OutboxPublish, OutboxRow, Store, StoreConflict
from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.infrastructure.bus.memory import MemoryBus

ROOT = Path(__file__).parents[2]


@pytest.fixture(params=STORES)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture(params=BACKENDS)
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


class FlakyBus(MemoryBus):
    """A remote bus that refuses to publish while ``down``."""

    down = False

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        if self.down:
            raise BusUnavailable("connection refused")
        await super().publish(messages)


async def test_commits_write_one_outbox_row_per_event_and_the_relay_publishes_them_in_order(
    any_store: str,
) -> None:
    bus = MemoryBus(remote=True)
    rt = await runtime(any_store, bus)
    await rt.engine.start()  # the engine only: the relay is run by hand below
    try:
        ids = [await start(rt, i) for i in range(3)]
        for iid in ids:
            await rt.engine.wait_finished(iid)
        journals = {iid: await rt.store.journal(iid) for iid in ids}
        events = sum(len(j) for j in journals.values())
        assert await rt.store.outbox_backlog() == events
        seen = await Collector(bus, "test").open()
        assert rt.relay is not None
        assert await rt.relay.relay_once() == events
        await until(lambda: len(seen.messages) == events, "every message")
        for iid in ids:
            assert seen.keys(iid) == [(e.type_name, seq) for seq, e in journals[iid]]
        assert {m.workspace_id for m in seen.messages} == {"default"}
        assert await rt.store.outbox_backlog() == 0
        assert await rt.relay.relay_once() == 0
        await seen.close()
    finally:
        await rt.close()


async def test_the_in_process_bus_writes_no_outbox(any_store: str) -> None:
    rt = await runtime(any_store, MemoryBus())
    await rt.start()
    try:
        iid = await start(rt)
        await rt.engine.wait_finished(iid)
        assert rt.relay is None
        assert await rt.store.outbox_backlog() == 0
    finally:
        await rt.close()


async def _failing_batch(store: Store, rows: list[OutboxRow]) -> None:
    async with store.transaction() as tx:
        await tx.save(Changes(outbox=rows))
        raise LookupError("the batch failed")


async def test_outbox_rows_are_rolled_back_with_their_transaction(any_store: str) -> None:
    rt = await runtime(any_store, MemoryBus(remote=True))
    rows = [OutboxRow("i1", n, "TaskCompleted", {"workspace_id": "w"}, 1.0) for n in (1, 2)]
    try:
        with pytest.raises(LookupError):
            await _failing_batch(rt.store, rows)
        assert await rt.store.outbox_backlog() == 0
        async with rt.store.transaction() as tx:
            await tx.save(Changes(outbox=rows))
        assert await rt.store.outbox_backlog() == 2
    finally:
        await rt.close()


async def test_rows_stay_while_the_bus_is_down_and_are_delivered_once_it_is_back(
    sql: str,
) -> None:
    bus = FlakyBus(remote=True)
    bus.down = True
    rt = await runtime(sql, bus)
    seen = await Collector(bus, "test").open()
    await rt.start()
    try:
        iid = await start(rt)
        await rt.engine.wait_finished(iid)
        relay = rt.relay
        assert relay is not None
        await until(lambda: relay.down is not None, "the relay to find the bus down")
        assert relay.down == "BusUnavailable: connection refused"
        journal = await rt.store.journal(iid)
        assert await rt.store.outbox_backlog() == len(journal)
        assert seen.messages == []
        bus.down = False
        await until(lambda: relay.down is None, "the relay to resume")
        await until(lambda: len(seen.messages) == len(journal), "every message")
        assert seen.keys(iid) == [(e.type_name, seq) for seq, e in journal]
        assert await rt.store.outbox_backlog() == 0
    finally:
        await seen.close()
        await rt.close()


async def test_a_pass_that_loses_a_conflict_runs_again_and_delivers_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay pass that loses a deadlock (MariaDB under the cluster suite) is rolled back:
    its rows stay and the relay runs again at once, with a warning, not a traceback."""
    bus = MemoryBus(remote=True)
    rt = await runtime(f"sqlite:///{tmp_path}/c.db", bus)
    store = rt.store
    real = store.relay_outbox
    lost: list[int] = []

    async def losing_once(limit: int, publish: OutboxPublish) -> int | None:
        if not lost:
            lost.append(limit)
            raise StoreConflict("Deadlock found when trying to get lock")
        return await real(limit, publish)

    store.relay_outbox = losing_once  # type: ignore[method-assign]
    seen = await Collector(bus, "test").open()
    await rt.start()
    try:
        iid = await start(rt)
        await rt.engine.wait_finished(iid)
        journal = await store.journal(iid)
        await until(lambda: len(seen.messages) >= len(journal), "every message")
        assert lost == [500]
        assert seen.keys(iid) == [(e.type_name, seq) for seq, e in journal]
        await until_backlog_empty(store)
        assert "lost a conflict" in caplog.text
        assert "Traceback" not in caplog.text
        assert "relay failed" not in caplog.text
    finally:
        await seen.close()
        await rt.close()


CHILD = """
import asyncio, sys
from cadenza.infrastructure.bus.memory import MemoryBus
from tests.integration.bus_helpers import runtime, start

async def main() -> None:
    rt = await runtime(sys.argv[1], MemoryBus(remote=True), failpoints="mid-outbox-relay:1")
    await rt.start()
    await start(rt)
    await asyncio.Event().wait()  # the crash point kills this process first

asyncio.run(main())
"""


async def test_a_crash_between_publishing_and_deleting_publishes_the_rows_again(
    sql: str,
) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, sql],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "failpoint mid-outbox-relay triggered (pass 1)" in child.stderr
    bus = MemoryBus(remote=True)
    rt = await runtime(sql, bus)
    try:
        [instance] = await rt.store.list_instances()
        journal = await rt.store.journal(instance.id)
        assert await rt.store.outbox_backlog() == len(journal)  # published, never deleted
        seen = await Collector(bus, "test").open()
        assert rt.relay is not None
        assert await rt.relay.relay_once() == len(journal)
        await until(lambda: len(seen.messages) == len(journal), "every message")
        assert seen.keys(instance.id) == [(e.type_name, seq) for seq, e in journal]
        assert await rt.store.outbox_backlog() == 0
        await seen.close()
    finally:
        await rt.close()
