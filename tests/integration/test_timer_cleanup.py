"""A task or instance that ends before its timers fire takes their rows with it, in the batch
that ends it, on every store (the timeouts themselves: test_engine_semantics.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.engine_harness import doc, engine_on, start
from tests.pg import STORES, backend_url

from cadenza.application.ports import Timer
from cadenza.bootstrap import Runtime
from cadenza.domain.commands import CancelInstance, SignalTask
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.domain.timers import TimerKind

DEADLINE_S = 10.0  # a safety net for a hung run, not a timing assumption


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def _timers(rt: Runtime, iid: str) -> list[Timer]:
    async with rt.store.transaction() as tx:
        return await tx.timers_for(iid)


async def _task_id(rt: Runtime, iid: str, node: str, status: TaskStatus) -> str:
    """The task of ``node`` once it has ``status`` (polled on its row, with a deadline)."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            for row in await rt.store.task_rows(iid):
                if row["node_id"] == node and row["status"] == status.value:
                    return str(row["id"])
            await asyncio.sleep(0.02)


def _approval(**extra: object) -> dict[str, object]:
    return {
        "id": "ask",
        "type": "approval",
        "config": {"title": "t", "timeout": "1h"},
        "timeout": "2h",
        **extra,
    }


async def test_an_approval_decided_early_leaves_no_timer_rows(database_url: str) -> None:
    d = doc([_approval()], settings={"timeout": "3h"})
    async with engine_on(database_url) as rt:
        iid = await start(rt, d)
        task_id = await _task_id(rt, iid, "ask", TaskStatus.WAITING)
        armed = await _timers(rt, iid)
        assert sorted(t.kind for t in armed) == sorted(
            [TimerKind.APPROVAL_TIMEOUT, TimerKind.TASK_TIMEOUT, TimerKind.INSTANCE_TIMEOUT]
        )
        assert {t.task_id for t in armed} == {task_id, None}
        await rt.engine.submit(SignalTask(iid, task_id, {"decision": "approve"}))
        inst = await asyncio.wait_for(rt.engine.wait_finished(iid), DEADLINE_S)
        assert inst.status is InstanceStatus.COMPLETED
        assert await _timers(rt, iid) == []


async def test_a_cancelled_instance_leaves_no_timer_rows(database_url: str) -> None:
    d = doc(
        [{"id": "w", "type": "wait", "config": {"duration": "1h"}, "timeout": "2h"}],
        settings={"timeout": "3h"},
    )
    async with engine_on(database_url) as rt:
        iid = await start(rt, d)
        await _task_id(rt, iid, "w", TaskStatus.WAITING)
        assert len(await _timers(rt, iid)) == 3  # wait, node timeout, instance timeout
        await rt.engine.submit(CancelInstance(iid))
        inst = await asyncio.wait_for(rt.engine.wait_finished(iid), DEADLINE_S)
        assert inst.status is InstanceStatus.CANCELLED
        assert await _timers(rt, iid) == []


async def test_a_failed_task_takes_its_other_timers_and_the_instance_keeps_its_deadline(
    database_url: str,
) -> None:
    """The approval's own timeout fails its task (and the instance): the task's node timeout
    row goes with it; the instance keeps its deadline (a retry from failure keeps it)."""
    d = doc(
        [{**_approval(), "config": {"title": "t", "timeout": "100ms"}}],
        settings={"timeout": "3h"},
    )
    async with engine_on(database_url) as rt:
        iid = await start(rt, d)
        inst = await asyncio.wait_for(rt.engine.wait_finished(iid), DEADLINE_S)
        assert inst.status is InstanceStatus.FAILED
        assert "approval timed out" in (inst.error or "")
        left = await _timers(rt, iid)
        assert [(t.kind, t.task_id) for t in left] == [(TimerKind.INSTANCE_TIMEOUT, None)]
