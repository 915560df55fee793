"""The Store port's contract, run against every adapter (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from cadenza.application.ports import (
    RELEASED,
    Changes,
    InstanceRow,
    StoreConflict,
    StoredDefinition,
    Timer,
)
from cadenza.domain import events as ev
from cadenza.domain.instance import Task
from cadenza.domain.status import TaskStatus
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.store import SqlStore

_ids = itertools.count(1)


def new_id() -> str:
    return f"id{next(_ids):08d}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    await asyncio.to_thread(upgrade, database_url)
    s = SqlStore(create_engine(database_url))
    try:
        yield s
    finally:
        await s.close()


def _definition(process_id: str, content_hash: str) -> StoredDefinition:
    return StoredDefinition(process_id, 0, content_hash, "published", {"id": process_id}, 1.0)


def _instance(iid: str, seq: int = 1) -> InstanceRow:
    return InstanceRow(iid, "p", 1, "running", {}, None, None, None, 1.0, 1.0, seq)


def _task(tid: str, available_at: float = 0.0) -> Task:
    return Task(
        tid, "", "n", "transform", TaskStatus.SCHEDULED, 1.0, 1.0, available_at=available_at
    )


async def _seed(store: SqlStore, iid: str, tasks: list[Task], key: str | None = None) -> None:
    changes = Changes(
        new_instances=[_instance(iid)],
        new_tasks=[(iid, t) for t in tasks],
        idempotency_keys=[(key, iid)] if key else [],
    )
    async with store.transaction() as tx:
        await tx.save(changes)


async def test_identical_documents_share_a_version_and_new_ones_count_up(store: SqlStore) -> None:
    first = await store.put_definition(_definition("p", "h1"))
    again = await store.put_definition(_definition("p", "h1"))
    second = await store.put_definition(_definition("p", "h2"))
    assert (first.version, again.version, second.version) == (1, 1, 2)
    latest = await store.get_definition("p", None)
    assert latest is not None
    assert latest.version == 2
    assert await store.get_definition("p", 7) is None


async def test_concurrent_claims_never_hand_out_a_task_twice(store: SqlStore) -> None:
    await _seed(store, "i1", [_task(f"t{i:03d}") for i in range(60)])
    results = await asyncio.gather(
        *(store.claim(f"w{n}", 10, 5.0, 30.0, new_id) for n in range(8)), return_exceptions=True
    )
    claimed = [lease.task_id for r in results if isinstance(r, list) for lease in r]
    assert len(claimed) == len(set(claimed))
    assert len(claimed) <= 60
    for r in results:
        assert isinstance(r, list | StoreConflict), r


async def test_claim_respects_available_at_and_sets_a_lease(store: SqlStore) -> None:
    await _seed(store, "i1", [_task("now", 1.0), _task("later", 100.0)])
    leases = await store.claim("w", 10, 5.0, 30.0, new_id)
    assert [x.task_id for x in leases] == ["now"]
    lease = leases[0]
    assert (lease.status, lease.leased_to, lease.lease_expires_at) == ("running", "w", 35.0)


async def test_expired_leases_are_found_and_renewal_hides_them(store: SqlStore) -> None:
    await _seed(store, "i1", [_task("t1"), _task("t2")])
    await store.claim("w", 1, 5.0, 10.0, new_id)
    assert [x.task_id for x in await store.expired_leases(20.0, 10)] == ["t1"]
    assert await store.renew("w", 100.0) == 1
    assert await store.expired_leases(20.0, 10) == []
    assert await store.renew("w", RELEASED) == 1  # a stopping worker gives its leases up
    assert [x.task_id for x in await store.expired_leases(20.0, 10)] == ["t1"]


async def test_a_restarted_worker_releases_only_its_earlier_incarnations_leases(
    store: SqlStore,
) -> None:
    holders = ["w", "w/old", "w/new", "w/new2", "wx/old", "other", "w_/x"]
    await _seed(store, "i1", [_task(f"t{i}") for i in range(len(holders))])
    for holder in holders:
        await store.claim(holder, 1, 5.0, 100.0, new_id)
    assert await store.release_previous("w", "w/new") == 3  # w, w/old and w/new2
    released = await store.expired_leases(20.0, 10)
    assert sorted((x.leased_to, x.lease_expires_at) for x in released) == [
        ("w", RELEASED),
        ("w/new2", RELEASED),
        ("w/old", RELEASED),
    ]


async def test_due_timers_come_in_fire_order_and_deleted_ones_stay_gone(store: SqlStore) -> None:
    timers = [Timer("b", "i1", None, "wait", 2.0), Timer("a", "i1", None, "wait", 1.0)]
    timers.append(Timer("c", "i1", None, "wait", 9.0))
    async with store.transaction() as tx:
        await tx.save(Changes(new_timers=timers))
    assert [t.id for t in await store.due_timers(5.0, 10)] == ["a", "b"]
    async with store.transaction() as tx:
        await tx.save(Changes(deleted_timers=["a"]))
    assert [t.id for t in await store.due_timers(5.0, 10)] == ["b"]


async def test_journal_seq_is_unique_per_instance(store: SqlStore) -> None:
    await _seed(store, "i1", [])
    event = ev.InstanceResumed(instance_id="i1", event_id="e1", occurred_at=1.0, reason="r")
    async with store.transaction() as tx:
        await tx.save(Changes(events=[(1, event)]))
    with pytest.raises(StoreConflict):
        async with store.transaction() as tx:
            await tx.save(Changes(events=[(1, event)]))
    journal = await store.journal("i1")
    assert [(seq, e.type_name) for seq, e in journal] == [(1, "InstanceResumed")]


async def test_idempotency_keys_are_unique_and_found(store: SqlStore) -> None:
    await _seed(store, "i1", [], key="k-1")
    async with store.transaction() as tx:
        assert await tx.instance_by_idempotency_key("k-1") == "i1"
        assert await tx.instance_by_idempotency_key("k-2") is None
    with pytest.raises(StoreConflict):
        await _seed(store, "i2", [], key="k-1")


async def test_lock_instances_returns_headers_of_known_ids(store: SqlStore) -> None:
    await _seed(store, "i1", [])
    async with store.transaction() as tx:
        headers = await tx.lock_instances(["i1", "missing"])
    assert list(headers) == ["i1"]
    assert (headers["i1"].process_id, headers["i1"].seq) == ("p", 1)
