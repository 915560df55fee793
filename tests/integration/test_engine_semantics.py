"""Engine semantics on every store (SQLite, PostgreSQL and the in-memory one): every node type
and policy."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.engine_harness import doc, engine_on, peer, run, start
from tests.pg import STORES, backend_url

from cadenza.application.definitions import InputsInvalid
from cadenza.domain.commands import (
    CancelInstance,
    Outcome,
    RetryInstance,
    SignalTask,
    StartInstance,
)
from cadenza.domain.json import JSONObject
from cadenza.domain.status import InstanceStatus, TaskStatus


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend, then ``memory://``: the engine's semantics must not depend on the store."""
    return backend_url(request, tmp_path)


def _t(node_id: str, output: object, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": "transform", "config": {"output": output}, **extra}


def _statuses(inst: object) -> dict[str, str]:
    from cadenza.domain.instance import Instance

    assert isinstance(inst, Instance)
    return {f"{t.scope}|{t.node_id}": t.status.value for t in inst.tasks.values()}


async def test_sequential_transforms_pass_outputs(database_url: str) -> None:
    d = doc(
        [_t("a", {"x": "{{ inputs.n * 2 }}"}), _t("b", "{{ nodes.a.output.x + 1 }}")],
        [{"from": "a", "to": "b"}],
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        outputs={"result": "{{ nodes.b.output }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d, {"n": 20})
    assert inst.status is InstanceStatus.COMPLETED
    assert inst.outputs == {"result": 41}


async def test_condition_skips_untaken_branch_and_skip_propagates(database_url: str) -> None:
    d = doc(
        [
            {
                "id": "route",
                "type": "condition",
                "config": {"branches": [{"port": "hi", "when": "inputs.v > 5"}], "default": "lo"},
            },
            _t("high", "H"),
            _t("high2", "H2"),
            _t("low", "L"),
            _t("join", "{{ nodes.high2.output or nodes.low.output }}"),
        ],
        [
            {"from": "route.hi", "to": "high"},
            {"from": "high", "to": "high2"},
            {"from": "route.lo", "to": "low"},
            {"from": "high2", "to": "join"},
            {"from": "low", "to": "join"},
        ],
        outputs={"r": "{{ nodes.join.output }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d, {"v": 1})
    status = _statuses(inst)
    assert inst.outputs == {"r": "L"}
    assert status["|high"] == status["|high2"] == "skipped"
    assert status["|join"] == "completed"


async def test_join_any_runs_once_on_first_arrival(database_url: str) -> None:
    d = doc(
        [
            _t("fast", 1),
            {"id": "slow", "type": "wait", "config": {"duration": "300ms"}},
            _t("first", "{{ nodes.fast.output }}", join="any"),
        ],
        [{"from": "fast", "to": "first"}, {"from": "slow", "to": "first"}],
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
        journal = await rt.store.journal(inst.id)
    firsts = [e for _, e in journal if getattr(e, "node_id", None) == "first"]
    assert len(firsts) == 1
    assert inst.status is InstanceStatus.COMPLETED


async def test_map_runs_body_per_item_with_bounded_concurrency(database_url: str) -> None:
    body = {"nodes": [_t("double", "{{ item * 2 }}")]}
    d = doc(
        [
            {
                "id": "m",
                "type": "map",
                "config": {"items": "inputs.xs", "concurrency": 2, "body": body},
            }
        ],
        outputs={"ys": "{{ nodes.m.output }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d, {"xs": [1, 2, 3, 4, 5]})
        journal = await rt.store.journal(inst.id)
    assert inst.outputs == {"ys": [2, 4, 6, 8, 10]}
    open_now = peak = 0
    for _, e in journal:
        if e.type_name == "ScopeOpened":
            open_now += 1
            peak = max(peak, open_now)
        elif e.type_name == "ScopeClosed":
            open_now -= 1
    assert peak == 2


async def test_loop_repeats_until_condition_or_bound(database_url: str) -> None:
    body = {"nodes": [_t("step", "{{ iteration + 1 }}")]}
    body2 = {"nodes": [_t("step2", "{{ iteration + 1 }}")]}
    until = {"until": "output >= 3", "max_iterations": 10, "body": body}
    bounded = {"until": "false", "max_iterations": 4, "body": body2}
    d = doc(
        [
            {"id": "l", "type": "loop", "config": until},
            {"id": "b", "type": "loop", "config": bounded},
        ],
        outputs={"l": "{{ nodes.l.output }}", "b": "{{ nodes.b.output }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
    assert inst.outputs is not None
    assert inst.outputs["l"] == {"iterations": 3, "last": 3, "stopped": True}
    assert inst.outputs["b"] == {"iterations": 4, "last": 4, "stopped": False}


async def test_approval_signal_takes_the_decision_port(database_url: str) -> None:
    d = doc(
        [
            {"id": "ask", "type": "approval", "config": {"title": "Ship {{ inputs.what }}?"}},
            _t("yes", "shipped"),
            _t("no", "held"),
        ],
        [{"from": "ask.approved", "to": "yes"}, {"from": "ask.rejected", "to": "no"}],
        outputs={"r": "{{ nodes.yes.output or nodes.no.output }}"},
    )
    async with engine_on(database_url) as rt:
        iid = await start(rt, d, {"what": "v2"})
        task = await _wait_for_task(rt, iid, "ask", TaskStatus.WAITING)
        assert task["detail"]["title"] == "Ship v2?"  # type: ignore[index,call-overload]
        verdict = await rt.engine.submit(
            SignalTask(iid, str(task["id"]), {"decision": "reject", "comment": "not yet"})
        )
        inst = await asyncio.wait_for(rt.engine.wait_finished(iid), 10)
        with pytest.raises(Exception, match="not an approval waiting"):
            await rt.engine.submit(SignalTask(iid, str(task["id"]), {"decision": "approve"}))
    assert verdict is Outcome.REJECTED
    assert inst.outputs == {"r": "held"}


async def test_approval_timeout_fails_into_on_error_continue(database_url: str) -> None:
    d = doc(
        [
            {
                "id": "ask",
                "type": "approval",
                "config": {"title": "t", "timeout": "200ms"},
                "on_error": "continue",
                "default": {"decision": "timeout"},
            }
        ],
        outputs={"d": "{{ nodes.ask.output.decision }}", "e": "{{ nodes.ask.error }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
    assert inst.outputs == {"d": "timeout", "e": "approval timed out without a decision"}


async def test_a_timed_out_approval_retried_from_failure_waits_again(database_url: str) -> None:
    """Retrying a failed control-node task resets it and it waits again (it used to raise
    InvalidTransition scheduled -> waiting); its timeout is armed again for the new attempt."""
    d = doc(
        [{"id": "ask", "type": "approval", "config": {"title": "t", "timeout": "200ms"}}],
        outputs={"d": "{{ nodes.ask.output.decision }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
        assert inst.status is InstanceStatus.FAILED
        [task] = [t for t in inst.tasks.values() if t.node_id == "ask"]
        task_id, first_attempt = task.id, task.attempt
        assert await rt.engine.submit(RetryInstance(inst.id)) is Outcome.RESUMED
        again = [type(e).__name__ for _, e in await rt.store.journal(inst.id)]
        resumed = again.index("InstanceResumed")
        assert again[resumed : resumed + 3] == ["InstanceResumed", "TaskReset", "TaskWaiting"]
        inst = await asyncio.wait_for(rt.engine.wait_finished(inst.id), 10)
    assert inst.status is InstanceStatus.FAILED  # the new attempt timed out in turn
    retried = inst.tasks[task_id]
    assert retried.attempt == first_attempt + 1
    assert retried.error == "approval timed out without a decision"


async def test_http_retries_with_backoff_then_succeeds(database_url: str) -> None:
    async with peer() as p, engine_on(database_url) as rt:
        p.statuses["flaky"] = [503, 500]
        d = doc(
            [
                {
                    "id": "call",
                    "type": "http",
                    "config": {"url": p.url + "/flaky"},
                    "retry": {"max_attempts": 3, "backoff": "exponential", "initial": "20ms"},
                }
            ],
            outputs={"status": "{{ nodes.call.output.status }}"},
        )
        inst = await run(rt, d)
    assert inst.outputs == {"status": 200}
    keys = [k for path, k in p.calls if path == "flaky"]
    assert [k.rsplit(":", 1)[1] for k in keys] == ["1", "2", "3"]  # one key per attempt


async def test_on_error_branch_takes_error_port_and_fail_fails_instance(database_url: str) -> None:
    async with peer() as p, engine_on(database_url) as rt:
        p.statuses["bad"] = [400, 400]
        call = {"id": "call", "type": "http", "config": {"url": p.url + "/bad"}}
        branching = doc(
            [{**call, "on_error": "branch"}, _t("ok", "fine"), _t("handler", "handled")],
            [{"from": "call", "to": "ok"}, {"from": "call.error", "to": "handler"}],
            outputs={"r": "{{ nodes.handler.output }}"},
        )
        inst = await run(rt, branching)
        assert inst.status is InstanceStatus.COMPLETED
        assert inst.outputs == {"r": "handled"}
        assert _statuses(inst)["|ok"] == "skipped"
        failing = doc([call], id="failing")
        inst = await run(rt, failing)
    assert inst.status is InstanceStatus.FAILED
    assert inst.error is not None
    assert "node 'call' failed" in inst.error
    assert "400" in inst.error


async def test_node_timeout_bounds_a_hanging_call(database_url: str) -> None:
    async with peer() as p, engine_on(database_url) as rt:
        p.delays["hang"] = 5
        d = doc(
            [{"id": "call", "type": "http", "config": {"url": p.url + "/hang"}, "timeout": "200ms"}]
        )
        inst = await run(rt, d)
    assert inst.status is InstanceStatus.FAILED
    assert "timed out" in (inst.error or "")


async def test_retry_from_failure_reuses_recorded_outputs(database_url: str) -> None:
    async with peer() as p, engine_on(database_url) as rt:
        p.statuses["step2"] = [400]
        d = doc(
            [
                {"id": "one", "type": "http", "config": {"url": p.url + "/step1"}},
                {"id": "two", "type": "http", "config": {"url": p.url + "/step2"}},
            ],
            [{"from": "one", "to": "two"}],
            outputs={"n": "{{ nodes.two.output.status }}"},
        )
        inst = await run(rt, d)
        assert inst.status is InstanceStatus.FAILED
        await rt.engine.submit(RetryInstance(inst.id))
        inst = await asyncio.wait_for(rt.engine.wait_finished(inst.id), 10)
    assert inst.status is InstanceStatus.COMPLETED
    assert [path for path, _ in p.calls].count("step1") == 1
    assert [path for path, _ in p.calls].count("step2") == 2


async def test_subprocess_returns_child_outputs_and_cancel_cascades(database_url: str) -> None:
    child = doc([_t("c", "{{ inputs.x * 10 }}")], id="child", outputs={"y": "{{ nodes.c.output }}"})
    slow_child = doc([{"id": "w", "type": "wait", "config": {"duration": "1h"}}], id="slow-child")
    parent = doc(
        [{"id": "sub", "type": "subprocess", "config": {"process": "child", "inputs": {"x": 4}}}],
        id="parent",
        outputs={"y": "{{ nodes.sub.output.y }}"},
    )
    waiting_parent = doc(
        [{"id": "sub", "type": "subprocess", "config": {"process": "slow-child"}}], id="parent2"
    )
    async with engine_on(database_url) as rt:
        await rt.definitions.publish(child)
        await rt.definitions.publish(slow_child)
        inst = await run(rt, parent)
        assert inst.outputs == {"y": 40}
        iid = await start(rt, waiting_parent)
        task = await _wait_for_task(rt, iid, "sub", TaskStatus.WAITING)
        child_id = str(task["detail"]["child_instance_id"])  # type: ignore[index,call-overload]
        await rt.engine.submit(CancelInstance(iid))
        parent_done = await asyncio.wait_for(rt.engine.wait_finished(iid), 10)
        child_done = await asyncio.wait_for(rt.engine.wait_finished(child_id), 10)
    assert parent_done.status is InstanceStatus.CANCELLED
    assert child_done.status is InstanceStatus.CANCELLED


async def test_instance_timeout_fails_the_instance(database_url: str) -> None:
    d = doc(
        [{"id": "w", "type": "wait", "config": {"duration": "1h"}}], settings={"timeout": "200ms"}
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
    assert inst.status is InstanceStatus.FAILED
    assert "timed out" in (inst.error or "")


async def test_idempotent_start_returns_the_same_instance(database_url: str) -> None:
    d = doc([_t("a", 1)])
    async with engine_on(database_url) as rt:
        first = await start(rt, d, key="order-42")
        second = await start(rt, d, key="order-42")
        third = await start(rt, d, key="order-43")
    assert first == second != third


async def test_max_concurrency_holds_ready_nodes_back(database_url: str) -> None:
    waits = [{"id": f"w{i}", "type": "wait", "config": {"duration": "50ms"}} for i in range(6)]
    d = doc(waits, settings={"max_concurrency": 2})
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
        journal = await rt.store.journal(inst.id)
    active = peak = 0
    seen: set[object] = set()
    for _, e in journal:
        if e.type_name == "TaskWaiting" and e.data()["task_id"] not in seen:
            seen.add(e.data()["task_id"])
            active += 1
            peak = max(peak, active)
        elif e.type_name == "TaskCompleted" and str(e.data().get("output", "")).startswith(
            "{'fired_at"
        ):
            active -= 1
    assert inst.status is InstanceStatus.COMPLETED
    assert peak == 2


async def test_inputs_that_break_the_schema_are_refused(database_url: str) -> None:
    d = doc([_t("a", 1)], inputs={"type": "object", "required": ["ticket"]})
    async with engine_on(database_url) as rt:
        stored = await rt.definitions.publish(d)
        with pytest.raises(InputsInvalid, match="ticket"):
            await rt.engine.submit(StartInstance(stored.process_id, {}))


async def _wait_for_task(rt: object, iid: str, node: str, status: TaskStatus) -> JSONObject:
    from cadenza.bootstrap import Runtime

    assert isinstance(rt, Runtime)
    for _ in range(200):
        for row in await rt.store.task_rows(iid):
            if row["node_id"] == node and row["status"] == status.value:
                return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {node} never reached {status}")
