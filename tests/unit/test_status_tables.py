"""The lifecycle tables themselves: shape, reachability, and that the engine keeps to them.

``tests/unit/test_replay.py`` checks that recorded journals replay; here every status change a
journal causes is checked against the tables, and no event asks for a change to the status
a task or instance already has (the tables have no self-loops).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TypeVar, cast

import pytest

from cadenza.domain import events as ev
from cadenza.domain import instance as instance_module
from cadenza.domain import instance_apply
from cadenza.domain.errors import InvalidTransition
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSONObject
from cadenza.domain.status import (
    ACTIVE_TASK,
    INITIAL_TASK,
    INSTANCE_TRANSITIONS,
    TASK_TRANSITIONS,
    TERMINAL_INSTANCE,
    TERMINAL_TASK,
    InstanceStatus,
    TaskStatus,
    transition_instance,
    transition_task,
)

S = TypeVar("S", bound=StrEnum)
REPLAY_DIR = Path(__file__).resolve().parents[1] / "replay"
JOURNALS = sorted(REPLAY_DIR.glob("*.json"))


def _reachable(table: Mapping[S, frozenset[S]], start: frozenset[S]) -> set[S]:
    seen, todo = set(start), list(start)
    while todo:
        for nxt in table[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_tables_cover_every_status() -> None:
    assert set(INSTANCE_TRANSITIONS) == set(InstanceStatus)
    assert set(TASK_TRANSITIONS) == set(TaskStatus)


def test_tables_have_no_self_loops() -> None:
    assert [s for s, nxt in INSTANCE_TRANSITIONS.items() if s in nxt] == []
    assert [s for s, nxt in TASK_TRANSITIONS.items() if s in nxt] == []


def test_terminal_instance_states_have_no_exits() -> None:
    assert {s: INSTANCE_TRANSITIONS[s] for s in TERMINAL_INSTANCE} == {
        InstanceStatus.COMPLETED: frozenset(),
        InstanceStatus.CANCELLED: frozenset(),
    }


def test_finished_tasks_leave_only_by_a_retry_and_completed_or_skipped_never() -> None:
    assert TASK_TRANSITIONS[TaskStatus.COMPLETED] == frozenset()
    assert TASK_TRANSITIONS[TaskStatus.SKIPPED] == frozenset()
    for status in TERMINAL_TASK:  # a retry starts a failed or cancelled task afresh
        assert TASK_TRANSITIONS[status] <= {TaskStatus.SCHEDULED, TaskStatus.WAITING}


def test_active_and_terminal_tasks_partition_the_statuses() -> None:
    assert set(TaskStatus) == ACTIVE_TASK | TERMINAL_TASK
    assert frozenset() == ACTIVE_TASK & TERMINAL_TASK


def test_every_instance_status_is_reachable_from_running() -> None:
    start = frozenset({InstanceStatus.RUNNING})
    assert _reachable(INSTANCE_TRANSITIONS, start) == set(InstanceStatus)


def test_every_task_status_is_reachable_from_a_initial_one() -> None:
    assert _reachable(TASK_TRANSITIONS, INITIAL_TASK) == set(TaskStatus)


def test_transition_to_the_same_status_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="task cannot go from running to running"):
        transition_task(TaskStatus.RUNNING, TaskStatus.RUNNING)
    with pytest.raises(InvalidTransition, match="task cannot go from waiting to waiting"):
        transition_task(TaskStatus.WAITING, TaskStatus.WAITING)
    with pytest.raises(InvalidTransition, match="instance cannot go from failed to failed"):
        transition_instance(InstanceStatus.FAILED, InstanceStatus.FAILED)


def _events(path: Path) -> tuple[str, list[ev.Event]]:
    content = cast(JSONObject, json.loads(path.read_text(encoding="utf-8")))
    instance_id = str(content["instance_id"])
    entries = cast(list[JSONObject], content["journal"])
    return instance_id, [
        ev.event_from_data(
            str(e["type"]),
            instance_id,
            str(e["event_id"]),
            float(cast(float, e["occurred_at"])),
            cast(JSONObject, e["data"]),
        )
        for e in entries
    ]


@pytest.fixture
def performed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every status change replaying asks for, as (from, to)."""
    seen: list[tuple[str, str]] = []

    def task(current: TaskStatus, new: TaskStatus) -> TaskStatus:
        seen.append((current.value, new.value))
        return transition_task(current, new)

    def inst(current: InstanceStatus, new: InstanceStatus) -> InstanceStatus:
        seen.append((current.value, new.value))
        return transition_instance(current, new)

    monkeypatch.setattr(instance_apply, "transition_task", task)
    monkeypatch.setattr(instance_apply, "transition_instance", inst)
    return seen


@pytest.mark.parametrize("path", JOURNALS, ids=[p.stem for p in JOURNALS])
def test_recorded_journals_change_status_only_as_the_tables_allow(
    path: Path, performed: list[tuple[str, str]]
) -> None:
    instance_id, events = _events(path)
    Instance.replay(instance_id, events)  # raises InvalidTransition on a change not allowed
    assert performed, "the journal changed no status"
    assert [(a, b) for a, b in performed if a == b] == []


def test_events_that_keep_a_status_ask_for_no_transition(
    performed: list[tuple[str, str]],
) -> None:
    """A lease taken again and a waiting task given more detail leave the status alone."""
    ids = iter(range(1000))
    stamp = instance_module.Stamp(1.0, lambda: f"e{next(ids)}")
    inst = Instance("i1")
    inst.record(
        stamp, ev.InstanceStarted(process_id="p", version=1, definition_hash="h", inputs={})
    )
    inst.record(stamp, ev.TaskWaiting(task_id="t1", scope="", node_id="w", node_type="wait"))
    inst.record(
        stamp,
        ev.TaskWaiting(task_id="t1", scope="", node_id="w", node_type="wait", detail={"a": 1}),
    )
    inst.record(
        stamp,
        ev.TaskScheduled(
            task_id="t2", scope="", node_id="x", node_type="llm", attempt=1, available_at=1.0
        ),
    )
    for token in ("k1", "k2"):
        inst.record(
            stamp,
            ev.TaskLeased(task_id="t2", leased_to="w1", lease_token=token, lease_expires_at=9.0),
        )
    assert inst.tasks["t1"].status is TaskStatus.WAITING
    assert inst.tasks["t1"].detail == {"a": 1}
    assert inst.tasks["t2"].status is TaskStatus.RUNNING
    assert inst.tasks["t2"].lease_token == "k2"
    assert performed == [("scheduled", "running")]
