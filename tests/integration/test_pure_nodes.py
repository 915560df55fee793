"""Pure nodes (transform, condition) run inside the decision step that reached them.

A chain of them is journaled step by step, each with its own events and output, and committed
once; a template that needs a render thread, or ``engine_inline_pure=false``, sends the node to a
worker instead, with the same result.
"""

from __future__ import annotations

import itertools

import sqlalchemy as sa
from tests.integration.engine_harness import doc, engine_on, run

from cadenza.bootstrap import Runtime
from cadenza.domain import events as ev
from cadenza.domain.instance import Instance
from cadenza.domain.json import JSONObject
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import feed


def _t(node_id: str, output: object, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": "transform", "config": {"output": output}, **extra}


def _chain() -> JSONObject:
    return doc(
        [
            _t("a", {"x": "{{ inputs.n }}"}),
            {
                "id": "route",
                "type": "condition",
                "config": {
                    "branches": [{"port": "big", "when": "nodes.a.output.x > 10"}],
                    "default": "small",
                },
            },
            _t("big", "big {{ nodes.a.output.x }}"),
            _t("small", "small"),
        ],
        [
            {"from": "a", "to": "route"},
            {"from": "route.big", "to": "big"},
            {"from": "route.small", "to": "small"},
        ],
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        outputs={"result": "{{ nodes.big.output }}"},
    )


async def _commits(rt: Runtime, instance_id: str) -> int:
    """Commits that wrote the instance's events: one feed row each."""
    assert isinstance(rt.store, SqlStore)
    async with rt.store.engine.connect() as conn:
        count = await conn.scalar(
            sa.select(sa.func.count()).select_from(feed).where(feed.c.instance_id == instance_id)
        )
    return int(count or 0)


async def _journal(rt: Runtime, instance_id: str) -> list[ev.Event]:
    return [e for _, e in await rt.store.journal(instance_id)]


def _on_workers(inst: Instance, journal: list[ev.Event]) -> set[str]:
    """Nodes whose task was leased to a worker (at scheduling or later)."""
    leased = {e.task_id for e in journal if isinstance(e, ev.TaskLeased)}
    leased |= {e.task_id for e in journal if isinstance(e, ev.TaskScheduled) and e.leased_to}
    return {inst.tasks[t].node_id for t in leased}


def _by_node(inst: Instance) -> dict[str, TaskStatus]:
    return {t.node_id: t.status for t in inst.tasks.values()}


async def test_a_chain_of_pure_nodes_commits_once_and_journals_every_step(
    database_url: str,
) -> None:
    async with engine_on(database_url) as rt:
        inst = await run(rt, _chain(), {"n": 40})
        journal = await _journal(rt, inst.id)
        commits = await _commits(rt, inst.id)
    assert inst.status is InstanceStatus.COMPLETED
    assert inst.outputs == {"result": "big 40"}
    assert _by_node(inst) == {
        "start": TaskStatus.COMPLETED,
        "a": TaskStatus.COMPLETED,
        "route": TaskStatus.COMPLETED,
        "big": TaskStatus.COMPLETED,
        "small": TaskStatus.SKIPPED,
        "end": TaskStatus.COMPLETED,
    }
    assert commits == 1
    assert _on_workers(inst, journal) == set()
    completed = {e.task_id: e for e in journal if isinstance(e, ev.TaskCompleted)}
    route = next(t for t in inst.tasks.values() if t.node_id == "route")
    assert completed[route.id].output == {"port": "big", "branch": 0}
    assert completed[route.id].ports == ("big",)
    replayed = Instance.replay(inst.id, journal)
    assert replayed.status is InstanceStatus.COMPLETED
    assert {t.node_id: t.output for t in replayed.tasks.values()} == {
        t.node_id: t.output for t in inst.tasks.values()
    }


async def test_a_pure_node_whose_template_loops_runs_on_a_worker(database_url: str) -> None:
    d = doc(
        [_t("looped", "{% for i in range(3) %}{{ i }}{% endfor %}"), _t("after", "done")],
        [{"from": "looped", "to": "after"}],
        outputs={"looped": "{{ nodes.looped.output }}"},
    )
    async with engine_on(database_url) as rt:
        inst = await run(rt, d)
        journal = await _journal(rt, inst.id)
    assert inst.status is InstanceStatus.COMPLETED
    assert inst.outputs == {"looped": "012"}
    assert _on_workers(inst, journal) == {"looped"}


def _failing(process_id: str, **extra: object) -> JSONObject:
    """A condition whose expression raises (an int compared with a string) at run time."""
    check = {
        "id": "check",
        "type": "condition",
        "config": {"branches": [{"port": "yes", "when": "inputs.n > 'a'"}], "default": "no"},
        **extra,
    }
    return doc([check], id=process_id, outputs={"check": "{{ nodes.check.output }}"})


async def test_a_failing_pure_node_follows_its_on_error_policy(database_url: str) -> None:
    async with engine_on(database_url) as rt:
        continued = await run(
            rt, _failing("c", on_error="continue", default={"fallback": True}), {"n": 1}
        )
        failed = await run(rt, _failing("f"), {"n": 1})
        journal = await _journal(rt, failed.id)
    assert continued.status is InstanceStatus.COMPLETED
    assert continued.outputs == {"check": {"fallback": True}}
    assert failed.status is InstanceStatus.FAILED
    assert failed.error is not None
    assert "condition 'check' branch 0" in failed.error
    check = next(t for t in failed.tasks.values() if t.node_id == "check")
    assert (check.status, check.attempt) == (TaskStatus.FAILED, 1)
    assert _on_workers(failed, journal) == set()


async def test_with_inline_pure_off_every_pure_node_runs_on_a_worker(database_url: str) -> None:
    async with engine_on(database_url, engine_inline_pure=False) as rt:
        inst = await run(rt, _chain(), {"n": 2})
        journal = await _journal(rt, inst.id)
        commits = await _commits(rt, inst.id)
    assert inst.status is InstanceStatus.COMPLETED
    assert _by_node(inst)["small"] is TaskStatus.COMPLETED
    assert _by_node(inst)["big"] is TaskStatus.SKIPPED
    assert _on_workers(inst, journal) == {"a", "route", "small"}
    assert commits > 1


async def test_an_instance_computes_at_most_inline_steps_pure_nodes_per_batch(
    database_url: str,
) -> None:
    """A long chain (or a map of pure bodies) cannot hold the commit loop: past the budget
    the next pure node goes to a worker, and its result's batch has a budget again."""
    ids = ["a", "b", "c", "d", "e"]
    d = doc(
        [_t(i, i) for i in ids],
        [{"from": x, "to": y} for x, y in itertools.pairwise(ids)],
        outputs={"last": "{{ nodes.e.output }}"},
    )
    async with engine_on(database_url, engine_inline_steps=2) as rt:
        inst = await run(rt, d)
        journal = await _journal(rt, inst.id)
    assert inst.status is InstanceStatus.COMPLETED
    assert inst.outputs == {"last": "e"}
    assert _on_workers(inst, journal) == {"c"}
