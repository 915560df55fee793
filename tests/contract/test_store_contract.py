"""The Store port's contract, run against every adapter: memory (the reference), a SQLite file
and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pg import STORES, backend_url

from cadenza.application.ports import (
    CRASHED,
    RELEASED,
    Changes,
    InstanceRow,
    Store,
    StoreConflict,
    StoredDefinition,
    Timer,
)
from cadenza.domain import events as ev
from cadenza.domain.status import TaskStatus
from cadenza.domain.tasks import Task
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.store import SqlStore

_ids = itertools.count(1)


def new_id() -> str:
    return f"id{next(_ids):08d}"


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = backend_url(request, tmp_path)
    if url == "memory://":
        yield MemoryStore()
        return
    await asyncio.to_thread(upgrade, url)
    s = SqlStore(create_engine(url))
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


async def _seed(store: Store, iid: str, tasks: list[Task], key: str | None = None) -> None:
    changes = Changes(
        new_instances=[_instance(iid)],
        new_tasks=[(iid, t) for t in tasks],
        idempotency_keys=[(key, iid)] if key else [],
    )
    async with store.transaction() as tx:
        await tx.save(changes)


async def test_identical_documents_share_a_version_and_new_ones_count_up(store: Store) -> None:
    first = await store.put_definition(_definition("p", "h1"))
    again = await store.put_definition(_definition("p", "h1"))
    second = await store.put_definition(_definition("p", "h2"))
    assert (first.version, again.version, second.version) == (1, 1, 2)
    latest = await store.get_definition("p", None)
    assert latest is not None
    assert latest.version == 2
    assert await store.get_definition("p", 7) is None


async def test_concurrent_claims_never_hand_out_a_task_twice(store: Store) -> None:
    await _seed(store, "i1", [_task(f"t{i:03d}") for i in range(60)])
    results = await asyncio.gather(
        *(store.claim(f"w{n}", 10, 5.0, 30.0, new_id) for n in range(8)), return_exceptions=True
    )
    claimed = [lease.task_id for r in results if isinstance(r, list) for lease in r]
    assert len(claimed) == len(set(claimed))
    assert len(claimed) <= 60
    for r in results:
        assert isinstance(r, list | StoreConflict), r


async def test_claim_respects_available_at_and_sets_a_lease(store: Store) -> None:
    await _seed(store, "i1", [_task("now", 1.0), _task("later", 100.0)])
    leases = await store.claim("w", 10, 5.0, 30.0, new_id)
    assert [x.task_id for x in leases] == ["now"]
    lease = leases[0]
    assert (lease.status, lease.leased_to, lease.lease_expires_at) == ("running", "w", 35.0)


async def test_expired_leases_are_found_and_renewal_hides_them(store: Store) -> None:
    await _seed(store, "i1", [_task("t1"), _task("t2")])
    await store.claim("w", 1, 5.0, 10.0, new_id)
    assert [x.task_id for x in await store.expired_leases(20.0, 10)] == ["t1"]
    assert await store.renew("w", 100.0) == 1
    assert await store.expired_leases(20.0, 10) == []
    assert await store.renew("w", RELEASED) == 1  # a stopping worker gives its leases up
    assert [x.task_id for x in await store.expired_leases(20.0, 10)] == ["t1"]


async def test_a_restarted_worker_releases_only_its_earlier_incarnations_leases(
    store: Store,
) -> None:
    holders = ["w", "w/old", "w/new", "w/new2", "wx/old", "other", "w_/x"]
    await _seed(store, "i1", [_task(f"t{i}") for i in range(len(holders))])
    for holder in holders:
        await store.claim(holder, 1, 5.0, 100.0, new_id)
    assert await store.release_previous("w", "w/new") == 3  # w, w/old and w/new2
    released = await store.expired_leases(20.0, 10)
    assert sorted((x.leased_to, x.lease_expires_at) for x in released) == [
        ("w", CRASHED),  # their process died: the restart marks them (task_max_crashes)
        ("w/new2", CRASHED),
        ("w/old", CRASHED),
    ]


async def test_a_restart_keeps_the_leases_a_clean_stop_released(store: Store) -> None:
    await _seed(store, "i1", [_task("stopped"), _task("died")])
    await store.claim("w/stopped", 1, 5.0, 100.0, new_id)
    await store.claim("w/died", 1, 5.0, 100.0, new_id)
    assert await store.renew("w/stopped", RELEASED) == 1  # Engine.stop gives them up
    assert await store.release_previous("w", "w/new") == 1  # only the dead one's
    left = await store.expired_leases(20.0, 10)
    assert sorted((x.leased_to, x.lease_expires_at) for x in left) == [
        ("w/died", CRASHED),
        ("w/stopped", RELEASED),
    ]


async def _timers(store: Store, *timers: Timer) -> None:
    async with store.transaction() as tx:
        await tx.save(Changes(new_timers=list(timers)))


def _timer(tid: str, fire_at: float) -> Timer:
    return Timer(tid, "i1", None, "wait", fire_at)


async def test_claimed_timers_come_in_fire_order_and_deleted_ones_stay_gone(store: Store) -> None:
    await _timers(store, _timer("b", 2.0), _timer("a", 1.0), _timer("c", 90.0))
    assert [t.id for t in await store.claim_timers("w", 5.0, 10, 30.0)] == ["a", "b"]
    async with store.transaction() as tx:
        await tx.save(Changes(deleted_timers=["a"]))
    assert [t.id for t in await store.claim_timers("w", 35.0, 10, 30.0)] == ["b"]


async def test_a_claimed_timer_is_skipped_until_its_claim_ends(store: Store) -> None:
    await _timers(store, _timer("a", 1.0), _timer("b", 2.0), _timer("late", 50.0))
    assert await store.claim_timers("w", 5.0, 1, 30.0) == [_timer("a", 1.0)]
    assert await store.claim_timers("w", 5.0, 10, 30.0) == [_timer("b", 2.0)]  # a is taken
    assert await store.claim_timers("w", 34.5, 10, 30.0) == []  # both claimed until 35
    assert [t.id for t in await store.claim_timers("w", 35.0, 10, 30.0)] == ["a", "b"]
    assert await store.claim_timers("w", 60.0, 10, 30.0) == [_timer("late", 50.0)]


async def test_a_restarted_worker_ends_its_earlier_incarnations_timer_claims(
    store: Store,
) -> None:
    holders = ["w", "w/old", "w/new", "wx/old", "other"]
    await _timers(store, *(_timer(f"t{i}", 1.0 + i) for i in range(len(holders))))
    for holder in holders:
        assert len(await store.claim_timers(holder, 10.0, 1, 30.0)) == 1
    await store.release_previous("w", "w/new")
    assert [t.id for t in await store.claim_timers("w/new", 10.0, 10, 30.0)] == ["t0", "t1"]
    assert await store.claim_timers("w/new", 39.0, 10, 30.0) == []  # all claimed until 40


async def test_concurrent_timer_claims_take_disjoint_timers(store: Store) -> None:
    ids = [f"t{i:03d}" for i in range(60)]
    await _timers(store, *(_timer(tid, 1.0 + i % 7) for i, tid in enumerate(ids)))
    claims = (store.claim_timers(f"w{n}", 10.0, 10, 30.0) for n in range(8))
    results = await asyncio.gather(*claims)
    claimed = [t.id for r in results for t in r]
    assert len(claimed) == len(set(claimed))  # no timer handed out twice
    rest = await store.claim_timers("w", 10.0, 100, 30.0)  # what no claimer took, if any
    assert sorted(claimed + [t.id for t in rest]) == ids


async def test_journal_seq_is_unique_per_instance(store: Store) -> None:
    await _seed(store, "i1", [])
    event = ev.InstanceResumed(instance_id="i1", event_id="e1", occurred_at=1.0, reason="r")
    async with store.transaction() as tx:
        await tx.save(Changes(events=[(1, event)]))
    with pytest.raises(StoreConflict):
        async with store.transaction() as tx:
            await tx.save(Changes(events=[(1, event)]))
    journal = await store.journal("i1")
    assert [(seq, e.type_name) for seq, e in journal] == [(1, "InstanceResumed")]


async def test_idempotency_keys_are_unique_and_found(store: Store) -> None:
    await _seed(store, "i1", [], key="k-1")
    async with store.transaction() as tx:
        assert await tx.instance_by_idempotency_key("k-1") == "i1"
        assert await tx.instance_by_idempotency_key("k-2") is None
    with pytest.raises(StoreConflict):
        await _seed(store, "i2", [], key="k-1")


async def test_lock_instances_returns_headers_of_known_ids(store: Store) -> None:
    await _seed(store, "i1", [])
    async with store.transaction() as tx:
        headers = await tx.lock_instances(["i1", "missing"])
    assert list(headers) == ["i1"]
    assert (headers["i1"].process_id, headers["i1"].seq) == ("p", 1)


class _Abort(Exception):
    pass


async def _save_then_raise(store: Store) -> None:
    event = ev.InstanceResumed(instance_id="i1", event_id="e1", occurred_at=1.0, reason="r")
    async with store.transaction() as tx:
        await tx.save(
            Changes(
                new_instances=[_instance("i1")],
                new_tasks=[("i1", _task("t1"))],
                events=[(1, event)],
                new_timers=[Timer("x", "i1", None, "wait", 1.0)],
            )
        )
        raise _Abort


async def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(_Abort):
        await _save_then_raise(store)
    assert await store.get_instance("i1") is None
    assert await store.task_rows("i1") == []
    assert await store.journal("i1") == []
    assert await store.claim_timers("w", 5.0, 10, 30.0) == []
    assert await store.claim("w", 10, 5.0, 30.0, new_id) == []


async def test_a_transaction_reads_its_own_writes_and_others_read_them_after_commit(
    store: Store,
) -> None:
    event = ev.InstanceResumed(instance_id="i1", event_id="e1", occurred_at=1.0, reason="r")
    async with store.transaction() as tx:
        await tx.save(
            Changes(
                new_instances=[_instance("i1", seq=3)],
                new_tasks=[("i1", _task("t1"))],
                events=[(1, event)],
                new_timers=[Timer("x", "i1", None, "wait", 1.0)],
                idempotency_keys=[("k", "i1")],
            )
        )
        assert (await tx.lock_instances(["i1"]))["i1"].seq == 3
        assert list(await tx.lock_tasks(["t1", "t2"])) == ["t1"]
        assert await tx.events_after("i1", 0) == [event]
        assert await tx.timers_for("i1") == [Timer("x", "i1", None, "wait", 1.0)]
        assert await tx.instance_by_idempotency_key("k") == "i1"
        assert await store.get_instance("i1") is None  # not committed yet
    row = await store.get_instance("i1")
    assert row is not None
    assert row.seq == 3


async def test_values_are_copied_in_and_out(store: Store) -> None:
    inputs: dict[str, object] = {"list": [1, 2]}
    row = InstanceRow("i1", "p", 1, "running", {"list": [1, 2]}, None, None, None, 1.0, 1.0, 1)
    task = _task("t1")
    task.detail = {"k": ["v"]}
    async with store.transaction() as tx:
        await tx.save(Changes(new_instances=[row], new_tasks=[("i1", task)]))
    row.inputs["list"] = [9]  # the caller changes its objects after saving them
    task.detail["k"] = ["changed"]
    first = await store.get_instance("i1")
    assert first is not None
    first.inputs["list"] = [7]  # ... or the ones it read
    again = await store.get_instance("i1")
    assert again is not None
    assert again.inputs == inputs
    rows = await store.task_rows("i1")
    assert rows[0]["detail"] == {"k": ["v"]}


async def test_task_rows_hold_every_column_in_creation_order(store: Store) -> None:
    late = _task("t-late")
    late.created_at = 3.0
    await _seed(store, "i1", [late, _task("t-early", 2.0)])
    rows = await store.task_rows("i1")
    assert [r["id"] for r in rows] == ["t-early", "t-late"]
    assert rows[0] == {
        "id": "t-early",
        "instance_id": "i1",
        "scope": "",
        "node_id": "n",
        "node_type": "transform",
        "status": "scheduled",
        "attempt": 1,
        "available_at": 2.0,
        "output": None,
        "error": None,
        "ports": [],
        "handled": False,
        "detail": {},
        "usage": None,
        "leased_to": None,
        "lease_token": None,
        "lease_expires_at": None,
        "created_at": 1.0,
        "updated_at": 1.0,
    }


async def test_an_update_keeps_the_lease_unless_it_changed(store: Store) -> None:
    await _seed(store, "i1", [_task("t1")])
    [lease] = await store.claim("w", 1, 5.0, 30.0, new_id)
    done = _task("t1")
    done.status, done.output, done.updated_at = TaskStatus.COMPLETED, {"x": 1}, 6.0
    async with store.transaction() as tx:
        await tx.save(Changes(updated_tasks=[("i1", done)]))
    [row] = await store.task_rows("i1")
    assert (row["status"], row["output"], row["updated_at"]) == ("completed", {"x": 1}, 6.0)
    assert (row["leased_to"], row["lease_token"]) == ("w", lease.lease_token)
    done.leased_to, done.lease_token, done.lease_changed = None, None, True
    async with store.transaction() as tx:
        await tx.save(Changes(updated_tasks=[("i1", done)]))
    [row] = await store.task_rows("i1")
    assert (row["leased_to"], row["lease_token"]) == (None, None)


async def test_one_claim_leases_in_available_order_under_one_token(store: Store) -> None:
    await _seed(store, "i1", [_task("c", 3.0), _task("a", 1.0), _task("b", 2.0)])
    leases = await store.claim("w", 2, 5.0, 30.0, new_id)
    assert sorted(x.task_id for x in leases) == ["a", "b"]
    assert len({x.lease_token for x in leases}) == 1
    assert [x.task_id for x in await store.claim("w", 5, 5.0, 30.0, new_id)] == ["c"]
    assert await store.claim("w", 5, 5.0, 30.0, new_id) == []


async def test_instance_updates_write_state_and_lists_show_newest_first(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.save(Changes(new_instances=[_instance("old"), _instance("new")]))
    new = InstanceRow("new", "p", 1, "completed", {}, {"r": 1}, None, None, 2.0, 5.0, 4)
    async with store.transaction() as tx:
        await tx.save(Changes(updated_instances=[new]))
    row = await store.get_instance("new")
    assert row is not None
    assert (row.status, row.outputs, row.updated_at, row.seq) == ("completed", {"r": 1}, 5.0, 4)
    assert row.created_at == 1.0  # not a state column: the update leaves it
    assert await store.unfinished_instances() == ["old"]
    assert [r.id for r in await store.list_instances(status="completed")] == ["new"]
    assert [r.id for r in await store.list_instances(limit=1, status="running")] == ["old"]


async def test_probe_writes_nothing_and_succeeds(store: Store) -> None:
    await store.probe()
    assert await store.list_instances() == []
