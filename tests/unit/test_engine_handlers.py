"""The engine's handlers and control nodes on a fake transaction: no database, no loop.

Each test runs batches the way the commit loop does (``apply_all``, ``finish``, save,
``committed``) over ``FakeTx``, a dict-backed twin of the ``Transaction`` port, and checks
the outcome of each command and the events it journaled.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import pytest

from cadenza.application.definitions import Definitions
from cadenza.application.engine.batch import Batch, BatchDeps
from cadenza.application.engine.handlers import Expected, apply_all
from cadenza.application.engine.policy import LeaseTerms
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.ports import (
    CRASHED,
    RELEASED,
    Changes,
    InstanceHeader,
    LeaseInfo,
    Store,
    StoredDefinition,
    Timer,
)
from cadenza.application.work import Capacity
from cadenza.domain import commands as cmd
from cadenza.domain import events as ev
from cadenza.domain.commands import Outcome
from cadenza.domain.definition import content_hash
from cadenza.domain.errors import Conflict
from cadenza.domain.json import JSONObject
from cadenza.domain.status import TaskStatus
from cadenza.domain.timers import TimerKind
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates

OWNER = "w1"
LEASE_S = 30.0


@dataclass
class FakeDb:
    definitions: dict[str, StoredDefinition] = field(default_factory=dict)
    journals: dict[str, list[ev.Event]] = field(default_factory=dict)
    leases: dict[str, LeaseInfo] = field(default_factory=dict)
    timers: dict[str, Timer] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


class FakeTx:
    """The ``Transaction`` port over a ``FakeDb`` (saves apply at once: no rollback here)."""

    def __init__(self, db: FakeDb) -> None:
        self.db = db

    async def lock_instances(self, ids: Sequence[str]) -> dict[str, InstanceHeader]:
        out = {}
        for iid in ids:
            journal = self.db.journals.get(iid)
            if journal:
                started = journal[0]
                assert isinstance(started, ev.InstanceStarted)
                out[iid] = InstanceHeader(iid, started.process_id, started.version, len(journal))
        return out

    async def events_after(self, instance_id: str, seq: int) -> list[ev.Event]:
        return self.db.journals[instance_id][seq:]

    async def lock_tasks(self, task_ids: Sequence[str]) -> dict[str, LeaseInfo]:
        return {t: self.db.leases[t] for t in task_ids if t in self.db.leases}

    async def definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        return self.db.definitions.get(process_id)

    async def instance_by_idempotency_key(self, key: str) -> str | None:
        return self.db.keys.get(key)

    async def timers_for(self, instance_id: str) -> list[Timer]:
        return [t for t in self.db.timers.values() if t.instance_id == instance_id]

    async def save(self, changes: Changes) -> None:
        for _, e in changes.events:
            self.db.journals.setdefault(e.instance_id, []).append(e)
        for iid, task in changes.new_tasks + changes.updated_tasks:
            self.db.leases[task.id] = LeaseInfo(
                task.id,
                iid,
                task.status.value,
                task.attempt,
                task.leased_to,
                task.lease_token,
                task.lease_expires_at,
            )
        for timer in changes.new_timers:
            self.db.timers[timer.id] = timer
        for timer_id in changes.deleted_timers:
            self.db.timers.pop(timer_id, None)
        self.db.keys.update(dict(changes.idempotency_keys))


@dataclass
class Batches:
    """Runs batches as the commit loop does, at a time the test sets."""

    db: FakeDb
    deps: BatchDeps
    now: float = 1000.0
    cache: dict[str, Loaded] = field(default_factory=dict)
    last: Batch | None = None

    async def run(self, *commands: cmd.Command) -> list[Expected]:
        tx = FakeTx(self.db)
        b = Batch(tx, self.deps, self.cache, self.now)
        results = await apply_all(b, commands)
        await tx.save(b.finish())
        b.committed()
        self.last = b
        return results

    def publish(self, nodes: list[JSONObject], edges: list[JSONObject] | None = None) -> None:
        document: JSONObject = {"schema": "cadenza/v1", "id": "p", "name": "t"}
        document["nodes"] = list(nodes)
        document["edges"] = list(edges or [])
        self.db.definitions["p"] = StoredDefinition(
            "p", 1, content_hash(document), "published", document, 0.0
        )

    async def start(self) -> str:
        (iid,) = await self.run(cmd.StartInstance("p", {}))
        assert isinstance(iid, str)
        return iid

    def events(self, iid: str) -> list[str]:
        return [e.type_name for e in self.db.journals[iid]]

    def task(self, iid: str, node_id: str) -> LeaseInfo:
        (lease,) = [
            lease
            for e in self.db.journals[iid]
            if isinstance(e, ev.TaskScheduled | ev.TaskWaiting) and e.node_id == node_id
            for lease in [self.db.leases[e.task_id]]
        ]
        return lease


@pytest.fixture
def engine() -> Iterator[Batches]:
    templates = JinjaTemplates()
    db = FakeDb()
    definitions = Definitions(cast(Store, db), templates, JsonSchemaChecks(), _Clock())
    ids = (f"id{n}" for n in itertools.count())
    deps = BatchDeps(
        definitions,
        templates,
        lambda: next(ids),
        LeaseTerms(OWNER, LEASE_S, max_requeues=1, max_crashes=2),
        Capacity(10),
    )
    yield Batches(db, deps)
    templates.close()


class _Clock:
    def now(self) -> float:
        return 0.0


def _http(node_id: str = "call") -> JSONObject:
    return {"id": node_id, "type": "http", "config": {"url": "http://127.0.0.1:9/x"}}


def _complete(lease: LeaseInfo, token: str | None = None) -> cmd.CompleteTask:
    return cmd.CompleteTask(
        lease.instance_id, lease.task_id, lease.attempt, token or lease.lease_token or "", {}
    )


async def test_a_report_with_the_lease_token_completes_the_task_and_a_stale_one_is_dropped(
    engine: Batches,
) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    lease = engine.task(iid, "call")
    assert (lease.status, lease.leased_to) == ("running", OWNER)
    assert await engine.run(_complete(lease, token="someone-else")) == [Outcome.STALE]
    assert await engine.run(_complete(lease)) == [Outcome.OK]
    assert await engine.run(_complete(lease)) == [Outcome.STALE]  # the task is finished
    assert engine.events(iid)[-2:] == ["TaskCompleted", "InstanceCompleted"]


async def test_an_expired_lease_is_requeued_then_fails_the_task_past_max_requeues(
    engine: Batches,
) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    lease = engine.task(iid, "call")
    expire = cmd.ExpireLease(iid, lease.task_id, lease.lease_token or "")
    assert await engine.run(expire) == [Outcome.RENEWED]  # not expired yet
    engine.now += LEASE_S + 1
    assert await engine.run(expire) == [Outcome.REQUEUED]
    again = engine.task(iid, "call")  # leased again at once: the slot was free
    assert again.lease_token != lease.lease_token
    engine.now += LEASE_S + 1
    expire_again = cmd.ExpireLease(iid, lease.task_id, again.lease_token or "")
    assert await engine.run(expire_again) == [Outcome.FAILED]
    assert engine.events(iid)[-4:] == ["TaskRequeued", "TaskLeased", "TaskFailed", "InstanceFailed"]


async def test_a_released_lease_is_requeued_without_charge(engine: Batches) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    lease = engine.task(iid, "call")
    engine.db.leases[lease.task_id] = replace(lease, lease_expires_at=RELEASED)
    expire = cmd.ExpireLease(iid, lease.task_id, lease.lease_token or "")
    assert await engine.run(expire) == [Outcome.RELEASED]
    (requeued,) = [e for e in engine.db.journals[iid] if isinstance(e, ev.TaskRequeued)]
    assert (requeued.charged, requeued.reason) == (
        False,
        f"released by {OWNER} (stopped)",
    )


async def test_a_lease_whose_holder_died_is_requeued_then_fails_the_attempt_at_max_crashes(
    engine: Batches,
) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    lease = engine.task(iid, "call")
    engine.db.leases[lease.task_id] = replace(lease, lease_expires_at=CRASHED)
    expire = cmd.ExpireLease(iid, lease.task_id, lease.lease_token or "")
    assert await engine.run(expire) == [Outcome.RELEASED]  # requeued, not charged
    (requeued,) = [e for e in engine.db.journals[iid] if isinstance(e, ev.TaskRequeued)]
    assert (requeued.charged, requeued.crashed) == (False, True)
    again = engine.task(iid, "call")
    engine.db.leases[lease.task_id] = replace(again, lease_expires_at=CRASHED)
    expire_again = cmd.ExpireLease(iid, lease.task_id, again.lease_token or "")
    assert await engine.run(expire_again) == [Outcome.FAILED]  # the second death: max_crashes
    (failed,) = [e for e in engine.db.journals[iid] if isinstance(e, ev.TaskFailed)]
    assert failed.error == (
        "the worker process died 2 times while running this task; it may crash its worker"
    )
    assert engine.events(iid)[-2:] == ["TaskFailed", "InstanceFailed"]


async def test_a_wait_completes_when_its_timer_fires_and_a_second_firing_is_stale(
    engine: Batches,
) -> None:
    engine.publish([{"id": "pause", "type": "wait", "config": {"duration": "5s"}}])
    iid = await engine.start()
    (timer,) = engine.db.timers.values()
    assert (timer.kind, timer.fire_at) == ("wait", engine.now + 5)
    fire = cmd.FireTimer(iid, timer.id, timer.task_id, TimerKind(timer.kind))
    engine.now += 5
    assert await engine.run(fire) == [Outcome.FIRED]
    assert engine.db.timers == {}
    assert engine.events(iid)[-2:] == ["TaskCompleted", "InstanceCompleted"]
    assert await engine.run(fire) == [Outcome.STALE]


async def test_an_approval_takes_the_decision_port_and_refuses_a_second_decision(
    engine: Batches,
) -> None:
    engine.publish([{"id": "ask", "type": "approval", "config": {"title": "Ship?"}}])
    iid = await engine.start()
    ask = engine.task(iid, "ask")
    assert ask.status == TaskStatus.WAITING.value
    signal = cmd.SignalTask(iid, ask.task_id, {"decision": "yes"})
    assert await engine.run(signal) == [Outcome.APPROVED]
    (completed,) = [
        e
        for e in engine.db.journals[iid]
        if isinstance(e, ev.TaskCompleted) and e.task_id == ask.task_id
    ]
    assert completed.ports == ("out", "approved")
    (refused,) = await engine.run(signal)
    assert isinstance(refused, Conflict)
    assert str(refused) == (
        f"task {ask.task_id} is not an approval waiting for a decision (it is completed)"
    )


async def test_a_signal_to_a_node_that_takes_none_is_refused(engine: Batches) -> None:
    engine.publish([{"id": "pause", "type": "wait", "config": {"duration": "5s"}}])
    iid = await engine.start()
    (refused,) = await engine.run(cmd.SignalTask(iid, engine.task(iid, "pause").task_id, {}))
    assert isinstance(refused, Conflict)


async def test_cancel_cancels_running_tasks_and_a_second_cancel_finds_it_finished(
    engine: Batches,
) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    assert await engine.run(cmd.CancelInstance(iid, "stop")) == [Outcome.CANCELLED]
    assert engine.last is not None
    assert engine.last.outcome.cancel_local == [engine.task(iid, "call").task_id]
    assert engine.events(iid)[-2:] == ["TaskCancelled", "InstanceCancelled"]
    assert await engine.run(cmd.CancelInstance(iid, "again")) == [Outcome.ALREADY_FINISHED]


async def test_a_failed_instance_is_retried_from_its_failed_task(engine: Batches) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    lease = engine.task(iid, "call")
    fail = cmd.FailTask(iid, lease.task_id, 1, lease.lease_token or "", "boom", retryable=False)
    assert await engine.run(fail) == [Outcome.OK]
    assert engine.events(iid)[-2:] == ["TaskFailed", "InstanceFailed"]
    assert await engine.run(cmd.RetryInstance(iid)) == [Outcome.RESUMED]
    assert engine.events(iid)[-3:] == ["InstanceResumed", "TaskReset", "TaskLeased"]
    assert engine.task(iid, "call").attempt == 2


async def test_a_task_timeout_cancels_a_map_body_and_fails_the_owner(engine: Batches) -> None:
    body: JSONObject = {"nodes": [_http("each")]}
    engine.publish(
        [
            {
                "id": "m",
                "type": "map",
                "config": {"items": "[1, 2]", "body": body},
                "timeout": "10s",
            }
        ]
    )
    iid = await engine.start()
    (timer,) = engine.db.timers.values()
    assert timer.kind == TimerKind.TASK_TIMEOUT
    engine.now += 10
    fire = cmd.FireTimer(iid, timer.id, timer.task_id, TimerKind(timer.kind))
    assert await engine.run(fire) == [Outcome.FIRED]
    events = engine.db.journals[iid]
    cancelled = [e for e in events if isinstance(e, ev.TaskCancelled)]
    assert [e.reason for e in cancelled] == ["owner timed out", "owner timed out"]
    closed = [e.status for e in events if isinstance(e, ev.ScopeClosed)]
    assert closed == ["cancelled", "cancelled"]
    assert engine.events(iid)[-2:] == ["TaskFailed", "InstanceFailed"]


async def test_a_claim_not_fenced_gives_its_reserved_slot_back(engine: Batches) -> None:
    engine.publish([_http()])
    iid = await engine.start()
    lease = engine.task(iid, "call")
    capacity = engine.deps.capacity
    used = capacity.used
    capacity.reserve(1)  # as the sweeper does before claiming
    claim = cmd.RecordClaims(((iid, lease.task_id, "not-the-token", 1, 0.0),))
    assert await engine.run(claim) == [0]
    assert capacity.used == used
