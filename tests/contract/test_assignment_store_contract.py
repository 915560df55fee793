"""The AssignmentStore port's contract, on every adapter: memory (the reference), a SQLite file
and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pg import STORES, backend_url

from cadenza.application.ports_assignments import AssignmentStore
from cadenza.domain.assignment import Assignment, AssignmentState, AssignmentStatus
from cadenza.infrastructure.assignments_memory import MemoryAssignments
from cadenza.infrastructure.sql.assignments import SqlAssignments
from cadenza.infrastructure.sql.database import create_engine, upgrade


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AssignmentStore]:
    url = backend_url(request, tmp_path)
    if url == "memory://":
        yield MemoryAssignments()
        return
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        yield SqlAssignments(engine)
    finally:
        await engine.dispose()


def _assignment(aid: str, agent: str = "w", requires: tuple[str, ...] = ()) -> Assignment:
    return Assignment(aid, agent, "i", f"t-{aid}", "n", requires, {"x": [1]}, None, f"k-{aid}", 5.0)


async def test_polls_take_the_oldest_matching_assignment_and_never_the_same_twice(
    store: AssignmentStore,
) -> None:
    await store.add(_assignment("a1", requires=("gpu",)), "ws", 1.0, 10.0)
    await store.add(_assignment("a2"), "ws", 2.0, 10.0)
    await store.add(_assignment("a3", agent="other"), "ws", 3.0, 10.0)
    taken = await asyncio.gather(*(store.take("w", frozenset(), 4.0) for _ in range(4)))
    assert sorted(a.id for a in taken if a is not None) == ["a2"]
    found = await store.take("w", frozenset({"gpu", "x"}), 5.0)
    assert found == _assignment("a1", requires=("gpu",))
    assert await store.take("w", frozenset({"gpu"}), 5.0) is None


async def test_a_result_is_accepted_once_and_only_from_taken(store: AssignmentStore) -> None:
    await store.add(_assignment("a1"), "ws", 1.0, 10.0)
    assert not await store.finish("a1", "early", None, True, 2.0)  # nobody took it
    assert await store.take("w", frozenset(), 2.0) is not None
    results = await asyncio.gather(
        store.finish("a1", {"r": 1}, None, True, 3.0),
        store.finish("a1", None, "boom", False, 3.0),
    )
    assert sorted(results) == [False, True]
    state = (await store.states(["a1", "missing"]))["a1"]
    assert state.status in (AssignmentStatus.DONE, AssignmentStatus.FAILED)
    assert not await store.abandon("a1", 4.0)  # finished: stays as it is
    assert (await store.states(["a1"]))["a1"] == state


async def test_abandoned_assignments_refuse_results_and_are_not_taken(
    store: AssignmentStore,
) -> None:
    await store.add(_assignment("a1"), "ws", 1.0, 10.0)
    assert await store.take("w", frozenset(), 2.0) is not None
    assert await store.abandon("a1", 3.0)
    assert not await store.finish("a1", 1, None, True, 4.0)
    assert await store.states(["a1"]) == {"a1": AssignmentState("w", AssignmentStatus.ABANDONED)}
    await store.add(_assignment("a2"), "ws", 1.0, 10.0)
    assert await store.abandon("a2", 3.0)  # never taken
    assert await store.take("w", frozenset(), 4.0) is None


async def test_a_taken_assignment_put_back_is_taken_again(store: AssignmentStore) -> None:
    await store.add(_assignment("a1"), "ws", 1.0, 10.0)
    assert await store.take("w", frozenset(), 2.0) is not None
    await store.put_back("a1", 3.0)
    again = await store.take("w", frozenset(), 4.0)
    assert again is not None
    assert again.id == "a1"


async def test_expire_abandons_late_unfinished_ones_and_purges_old_finished_ones(
    store: AssignmentStore,
) -> None:
    await store.add(_assignment("late"), "ws", 1.0, 10.0)
    await store.add(_assignment("taken-late"), "ws", 1.1, 10.0)
    await store.add(_assignment("in-time"), "ws", 1.2, 100.0)
    await store.add(_assignment("old-done"), "ws", 1.3, 100.0)
    for _ in range(2):
        assert await store.take("w", frozenset(), 2.0) is not None  # late, taken-late
    await store.put_back("late", 2.0)
    assert await store.take("w", frozenset(), 2.0) is not None  # late again
    found = await store.take("w", frozenset(), 2.0)
    assert found is not None
    assert found.id == "in-time"
    found = await store.take("w", frozenset(), 2.0)
    assert found is not None
    assert found.id == "old-done"
    assert await store.finish("old-done", 1, None, True, 3.0)
    assert await store.expire(50.0, 4.0) == 2
    states = await store.states(["late", "taken-late", "in-time", "old-done"])
    assert {k: v.status for k, v in states.items()} == {
        "late": AssignmentStatus.ABANDONED,
        "taken-late": AssignmentStatus.ABANDONED,
        "in-time": AssignmentStatus.TAKEN,
    }
    assert [a.id for a in await store.unfinished(10)] == ["in-time"]


async def test_latest_finds_the_newest_assignment_of_one_task_attempt(
    store: AssignmentStore,
) -> None:
    a1 = _assignment("a1")
    assert await store.latest(a1.task_id, a1.idempotency_key) is None
    await store.add(a1, "ws", 1.0, 10.0)
    await store.add(_assignment("other", agent="x"), "ws", 1.5, 10.0)
    assert await store.latest(a1.task_id, a1.idempotency_key) == (
        "a1",
        AssignmentState("w", AssignmentStatus.OPEN),
    )
    assert await store.abandon("a1", 2.0)
    again = Assignment("a2", "w", "i", a1.task_id, "n", (), {"x": [1]}, None, "k-a1", 5.0)
    await store.add(again, "ws", 3.0, 10.0)
    assert await store.take("w", frozenset(), 4.0) is not None
    assert await store.finish("a2", {"r": 2}, None, True, 5.0)
    assert await store.latest(a1.task_id, a1.idempotency_key) == (
        "a2",
        AssignmentState("w", AssignmentStatus.DONE, {"r": 2}),
    )
    assert await store.latest(a1.task_id, "k-other") is None


async def test_an_id_is_added_once(store: AssignmentStore) -> None:
    assert await store.add(_assignment("a1"), "ws", 1.0, 10.0)
    assert not await store.add(_assignment("a1", agent="other"), "ws", 2.0, 10.0)
    assert await store.take("w", frozenset(), 3.0) == _assignment("a1")
    assert await store.take("other", frozenset(), 3.0) is None
