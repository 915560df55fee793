"""The engine's command handlers on the in-memory store, driven command by command with a fake
clock: exact journals, task rows and instance statuses, no database and no waiting."""

from __future__ import annotations

import pytest
from tests.unit.engine_memory import HOLDER, LEASE_S, T0, doc, http, rig

from cadenza.domain import commands as cmd

_STARTED = ["InstanceStarted", "TaskScheduled start", "TaskCompleted start"]
_RETRY = {"max_attempts": 2, "backoff": "fixed", "initial": "10s"}
_WAIT_1H = {"id": "w", "type": "wait", "config": {"duration": "1h"}}


async def test_start_records_the_start_node_and_leases_the_first_work_node_at_once() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a")]))
        assert await r.journal(iid) == [*_STARTED, "TaskScheduled a"]
        row = (await r.tasks(iid))["a"]
        assert (row["status"], row["attempt"], row["leased_to"]) == ("running", 1, HOLDER)
        assert row["lease_expires_at"] == T0 + LEASE_S
        assert await r.parked.keys(1) == [f"{iid}:a:0:1"]
        assert await r.status(iid) == "running"


async def test_completing_the_last_work_node_completes_the_instance_with_its_outputs() -> None:
    d = doc(
        [http("a"), http("b")], [{"from": "a", "to": "b"}], outputs={"r": "{{ nodes.b.output.y }}"}
    )
    async with rig() as r:
        iid = await r.start(d)
        assert await r.complete(iid, "a", {"x": 1}) == "ok"
        assert await r.complete(iid, "b", {"y": 2}) == "ok"
        row = await r.store.get_instance(iid)
        assert row is not None
        assert (row.status, row.outputs) == ("completed", {"r": 2})
        assert await r.journal(iid) == [
            *_STARTED,
            "TaskScheduled a",
            "TaskCompleted a",
            "TaskScheduled b",
            "TaskCompleted b",
            "TaskScheduled end",
            "TaskCompleted end",
            "InstanceCompleted",
        ]


async def test_a_retryable_failure_queues_the_next_attempt_until_its_backoff_is_over() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a", retry=_RETRY)]))
        assert await r.fail(iid, "a", "boom") == "ok"
        row = (await r.tasks(iid))["a"]
        assert (row["status"], row["attempt"], row["leased_to"]) == ("scheduled", 2, None)
        assert (row["available_at"], row["error"]) == (T0 + 10, "boom")
        r.clock.advance(9)
        await r.engine.sweeper.sweep_once()  # not due yet: nothing claimed
        assert (await r.tasks(iid))["a"]["status"] == "scheduled"
        r.clock.advance(1)
        await r.engine.sweeper.sweep_once()
        _, attempt, _ = await r.lease(iid, "a")
        assert attempt == 2
        assert await r.complete(iid, "a", {}) == "ok"
        assert await r.journal(iid) == [
            *_STARTED,
            "TaskScheduled a",
            "TaskRetryScheduled a",
            "TaskLeased a",
            "TaskCompleted a",
            "TaskScheduled end",
            "TaskCompleted end",
            "InstanceCompleted",
        ]
        assert await r.parked.keys(2) == [f"{iid}:a:0:1", f"{iid}:a:0:2"]


async def test_the_last_attempts_failure_fails_the_instance_with_the_nodes_error() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a", retry=_RETRY)]))
        await r.fail(iid, "a", "boom")
        r.clock.advance(10)
        await r.engine.sweeper.sweep_once()
        await r.fail(iid, "a", "boom again")
        row = await r.store.get_instance(iid)
        assert row is not None
        assert (row.status, row.error) == ("failed", "node 'a' failed: boom again")
        assert (await r.journal(iid))[-3:] == ["TaskLeased a", "TaskFailed a", "InstanceFailed"]


async def test_a_result_under_another_lease_token_is_dropped_as_stale() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a")]))
        task_id, attempt, _ = await r.lease(iid, "a")
        verdict = await r.submit(cmd.CompleteTask(iid, task_id, attempt, "forged", {"x": 1}))
        assert verdict == "stale"
        assert await r.journal(iid) == [*_STARTED, "TaskScheduled a"]
        assert (await r.tasks(iid))["a"]["status"] == "running"


async def test_an_expired_lease_requeues_the_task_and_fences_the_old_holder() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a")]))
        task_id, attempt, old = await r.lease(iid, "a")
        r.clock.advance(LEASE_S + 1)
        [expired] = await r.store.expired_leases(r.clock.now(), 10)
        assert (expired.task_id, expired.lease_token) == (task_id, old)
        assert await r.submit(cmd.ExpireLease(iid, task_id, old)) == "requeued"
        assert await r.submit(cmd.CompleteTask(iid, task_id, attempt, old, {"late": 1})) == "stale"
        await r.engine.sweeper.sweep_once()  # claimed again, under a new token
        _, again, new = await r.lease(iid, "a")
        assert (again, new != old) == (1, True)
        assert (await r.tasks(iid))["a"]["lease_expires_at"] == T0 + 2 * LEASE_S + 1
        assert await r.journal(iid) == [
            *_STARTED,
            "TaskScheduled a",
            "TaskRequeued a",
            "TaskLeased a",
        ]


async def test_a_wait_node_completes_when_its_timer_fires_and_not_before() -> None:
    async with rig() as r:
        iid = await r.start(doc([_WAIT_1H]))
        r.clock.advance(3599)
        assert await r.fire_due() == []
        r.clock.advance(1)
        assert await r.fire_due() == ["wait"]
        assert await r.status(iid) == "completed"
        assert (await r.tasks(iid))["w"]["output"] == {"fired_at": T0 + 3600}
        assert await r.journal(iid) == [
            *_STARTED,
            "TaskWaiting w",
            "TaskCompleted w",
            "TaskScheduled end",
            "TaskCompleted end",
            "InstanceCompleted",
        ]


@pytest.mark.parametrize(
    ("decision", "verdict", "taken", "then"),
    [
        ("approve", "approved", "yes", ["TaskScheduled yes", "TaskSkipped no"]),
        ("reject", "rejected", "no", ["TaskSkipped yes", "TaskScheduled no"]),
    ],
)
async def test_an_approval_signal_takes_the_decisions_port_and_skips_the_other(
    decision: str, verdict: str, taken: str, then: list[str]
) -> None:
    d = doc(
        [{"id": "ask", "type": "approval", "config": {"title": "Ship?"}}, http("yes"), http("no")],
        [{"from": "ask.approved", "to": "yes"}, {"from": "ask.rejected", "to": "no"}],
    )
    async with rig() as r:
        iid = await r.start(d)
        ask = (await r.tasks(iid))["ask"]
        assert (ask["status"], ask["detail"]) == ("waiting", {"title": "Ship?", "description": ""})
        assert (
            await r.submit(cmd.SignalTask(iid, str(ask["id"]), {"decision": decision})) == verdict
        )
        assert (await r.tasks(iid))[taken]["status"] == "running"
        assert (await r.tasks(iid))["ask"]["output"] == {
            "decision": verdict,
            "comment": None,
            "by": None,
        }
        assert await r.journal(iid) == [*_STARTED, "TaskWaiting ask", "TaskCompleted ask", *then]


async def test_an_approval_without_a_decision_fails_when_its_timeout_fires() -> None:
    ask = {"id": "ask", "type": "approval", "config": {"title": "t", "timeout": "1d"}}
    async with rig() as r:
        iid = await r.start(doc([ask]))
        r.clock.advance(86_400)
        assert await r.fire_due() == ["approval_timeout"]
        row = await r.store.get_instance(iid)
        assert row is not None
        assert row.status == "failed"
        assert (await r.tasks(iid))["ask"]["error"] == "approval timed out without a decision"


async def test_cancel_cancels_every_active_task_then_the_instance() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a"), _WAIT_1H]))
        assert await r.submit(cmd.CancelInstance(iid, "no longer needed")) == "cancelled"
        rows = await r.tasks(iid)
        assert (rows["a"]["status"], rows["w"]["status"]) == ("cancelled", "cancelled")
        assert rows["a"]["leased_to"] is None
        assert await r.status(iid) == "cancelled"
        assert (await r.journal(iid))[-3:] == [
            "TaskCancelled a",
            "TaskCancelled w",
            "InstanceCancelled",
        ]
        r.clock.advance(3600)
        assert await r.fire_due() == []  # the cancel deleted the wait's timer with its task
        assert await r.status(iid) == "cancelled"


async def test_retry_instance_reruns_only_the_failed_node_and_reuses_recorded_outputs() -> None:
    d = doc(
        [http("a"), http("b")], [{"from": "a", "to": "b"}], outputs={"r": "{{ nodes.a.output.x }}"}
    )
    async with rig() as r:
        iid = await r.start(d)
        await r.complete(iid, "a", {"x": 1})
        await r.fail(iid, "b", "bad request", retryable=False)
        assert await r.status(iid) == "failed"
        assert await r.submit(cmd.RetryInstance(iid)) == "resumed"
        _, attempt, _ = await r.lease(iid, "b")
        assert attempt == 2
        await r.complete(iid, "b", {})
        row = await r.store.get_instance(iid)
        assert row is not None
        assert (row.status, row.outputs) == ("completed", {"r": 1})
        assert await r.parked.keys(3) == [f"{iid}:a:0:1", f"{iid}:b:0:1", f"{iid}:b:0:2"]
        assert await r.journal(iid) == [
            *_STARTED,
            "TaskScheduled a",
            "TaskCompleted a",
            "TaskScheduled b",
            "TaskFailed b",
            "InstanceFailed",
            "InstanceResumed",
            "TaskReset b",
            "TaskLeased b",
            "TaskCompleted b",
            "TaskScheduled end",
            "TaskCompleted end",
            "InstanceCompleted",
        ]


async def test_an_instance_timeout_cancels_running_work_and_fails_the_instance() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a")], settings={"timeout": "1h"}))
        r.clock.advance(3600)
        assert await r.fire_due() == ["instance_timeout"]
        row = await r.store.get_instance(iid)
        assert row is not None
        assert (row.status, row.error) == ("failed", "instance timed out (settings.timeout)")
        assert (await r.journal(iid))[-2:] == ["TaskCancelled a", "InstanceFailed"]
