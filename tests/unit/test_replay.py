"""Recorded journals replay to the state the engine had: old instances keep working.

Each ``tests/replay/*.json`` holds a journal the real engine wrote for one example run, and the
instance and task rows it materialized next to it (see ``tests/replay/record.py``). A change to
events, transitions, hashing or scheduling that would break an instance already in a database
fails here. Re-record only on purpose, when old journals may change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from tests.checks import RealChecks

from cadenza.domain import events as ev
from cadenza.domain import scheduling as s
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSONObject
from cadenza.domain.plan import Plan, compile_plan
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.domain.validation import parse_definition

REPLAY_DIR = Path(__file__).resolve().parents[1] / "replay"
FILES = sorted(REPLAY_DIR.glob("*.json"))


@dataclass(frozen=True)
class Recorded:
    instance_id: str
    document: JSONObject
    plan: Plan
    entries: list[JSONObject]
    events: list[ev.Event]
    expected: JSONObject


def _load(path: Path) -> Recorded:
    content = cast(JSONObject, json.loads(path.read_text(encoding="utf-8")))
    document = cast(JSONObject, content["definition"])
    instance_id = str(content["instance_id"])
    entries = cast(list[JSONObject], content["journal"])
    events = [
        ev.event_from_data(
            str(e["type"]),
            instance_id,
            str(e["event_id"]),
            float(cast(float, e["occurred_at"])),
            cast(JSONObject, e["data"]),
        )
        for e in entries
    ]
    plan = compile_plan(parse_definition(document, RealChecks()))
    return Recorded(
        instance_id, document, plan, entries, events, cast(JSONObject, content["expected"])
    )


@pytest.fixture(params=FILES, ids=[p.stem for p in FILES])
def recorded(request: pytest.FixtureRequest) -> Recorded:
    return _load(cast(Path, request.param))


def _tasks(inst: Instance) -> JSONObject:
    return {
        f"{t.scope}|{t.node_id}": {
            "status": t.status.value,
            "output": t.output,
            "attempt": t.attempt,
        }
        for t in inst.tasks.values()
    }


def test_journals_are_recorded() -> None:
    assert len(FILES) >= 1, f"no recorded journals in {REPLAY_DIR}; run tests/replay/record.py"


def test_journal_is_a_gapless_sequence(recorded: Recorded) -> None:
    assert [e["seq"] for e in recorded.entries] == list(range(1, len(recorded.entries) + 1))
    assert isinstance(recorded.events[0], ev.InstanceStarted)


def test_events_keep_their_recorded_fields(recorded: Recorded) -> None:
    """Reading an event back loses nothing (new fields may appear, old ones may not change)."""
    for entry, event in zip(recorded.entries, recorded.events, strict=True):
        assert event.type_name == entry["type"]
        data = event.data()
        recorded_data = cast(JSONObject, entry["data"])
        assert {k: data.get(k) for k in recorded_data} == recorded_data, entry["seq"]


def test_definition_hash_is_stable(recorded: Recorded) -> None:
    """Instances pin their version by content hash: hashing an old document must not change."""
    started = recorded.events[0]
    assert isinstance(started, ev.InstanceStarted)
    assert recorded.plan.definition.content_hash == started.definition_hash


def test_replay_rebuilds_the_recorded_state(recorded: Recorded) -> None:
    inst = Instance.replay(recorded.instance_id, recorded.events)
    expected = recorded.expected
    assert inst.status.value == expected["status"]
    assert inst.outputs == expected["outputs"]
    assert _tasks(inst) == expected["tasks"]
    assert inst.seq == len(recorded.events)


def test_finished_instance_needs_no_decision(recorded: Recorded) -> None:
    inst = Instance.replay(recorded.instance_id, recorded.events)
    assert inst.status is not InstanceStatus.RUNNING
    limit = recorded.plan.definition.settings.max_concurrency
    assert s.schedule(recorded.plan, inst, limit) == []
    assert s.schedule(recorded.plan, inst) == []


def test_last_decision_is_reached_again(recorded: Recorded) -> None:
    """Replayed without its final event, the instance decides to end exactly as it did."""
    *before, last = recorded.events
    inst = Instance.replay(recorded.instance_id, before)
    decisions = s.schedule(recorded.plan, inst, recorded.plan.definition.settings.max_concurrency)
    if isinstance(last, ev.InstanceCompleted):
        assert decisions == [s.CompleteInstance()]
    elif isinstance(last, ev.InstanceFailed) and last.node_id is not None:
        assert s.FailInstance(last.error, last.node_id) in decisions
    # else a command ended it (cancel, instance timeout), not a decision


def test_every_prefix_replays(recorded: Recorded) -> None:
    """Each journal prefix is a state the engine passed through: every transition is valid."""
    for n in range(len(recorded.events) + 1):
        inst = Instance.replay(recorded.instance_id, recorded.events[:n])
        assert inst.seq == n


def test_decisions_on_every_prefix_agree_with_the_journal(recorded: Recorded) -> None:
    """Scheduling is deterministic: what it decides at any point is what the journal records.

    A prefix may stop inside a batch, so a decision is not necessarily the next event; but
    every node it starts or skips, scope it opens or closes and owner it finishes is found so
    in the final state.
    """
    final = Instance.replay(recorded.instance_id, recorded.events)
    limit = recorded.plan.definition.settings.max_concurrency
    for n in range(1, len(recorded.events)):
        inst = Instance.replay(recorded.instance_id, recorded.events[:n])
        for d in s.schedule(recorded.plan, inst, limit):
            _assert_agrees(final, d, n)


def _assert_agrees(final: Instance, d: s.Decision, n: int) -> None:
    where = f"after event {n}: {d}"
    if isinstance(d, s.StartNode | s.SkipNode):
        task = final.task_at(d.scope, d.node_id)
        if task is None:  # decided while the run was failing: the failure came first
            assert final.status is not InstanceStatus.COMPLETED, where
            return
        assert (task.status is TaskStatus.SKIPPED) == isinstance(d, s.SkipNode), where
    elif isinstance(d, s.OpenScope):
        assert s.scope_key(d.parent, d.owner, d.index) in final.scopes, where
    elif isinstance(d, s.CloseScope):  # closing renders the output, which may fail the scope
        assert final.scopes[d.scope].status in ("completed", "failed"), where
    elif isinstance(d, s.FailScope):
        assert final.scopes[d.scope].status == "failed", where
    elif isinstance(d, s.FinishOwner):
        owner = final.task_at(d.scope, d.node_id)
        assert owner is not None, where
        assert owner.status is TaskStatus.COMPLETED, where
    elif isinstance(d, s.FailOwner):
        owner = final.task_at(d.scope, d.node_id)
        assert owner is not None, where
        assert owner.status is TaskStatus.FAILED, where
    elif isinstance(d, s.CompleteInstance):
        assert final.status is InstanceStatus.COMPLETED, where
    else:
        assert final.status is InstanceStatus.FAILED, where
