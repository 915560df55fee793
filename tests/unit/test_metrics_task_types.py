"""The process that commits a task's end labels it with its node type even when it never saw
the task scheduled or run (the cluster suite found ~15% of completions counted as
``node_type="unknown"``: a task leased by a worker, finished in a commit of another engine)."""

from __future__ import annotations

from tests.unit.engine_memory import doc, http, rig

from cadenza.infrastructure.observability.metrics import Metrics


def executions(m: Metrics) -> dict[tuple[str, str], float]:
    return {
        (s.labels["node_type"], s.labels["status"]): s.value
        for family in m.registry.collect()
        if family.name == "task_executions"
        for s in family.samples
        if s.name == "task_executions_total"
    }


async def test_a_commit_labels_the_tasks_it_ends_with_their_node_type() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a")]))  # scheduled before these metrics existed
        metrics = Metrics()
        r.engine.subscribe_task_types(metrics.on_task_types)
        r.engine.subscribe(metrics.on_events)
        assert await r.complete(iid, "a", {"ok": True}) == "ok"
        assert await r.status(iid) == "completed"
        counted = executions(metrics)
        assert counted[("http", "completed")] == 1.0
        assert ("unknown", "completed") not in counted


async def test_without_the_hook_the_same_commit_counts_unknown() -> None:
    async with rig() as r:
        iid = await r.start(doc([http("a")]))
        metrics = Metrics()
        r.engine.subscribe(metrics.on_events)  # the events alone do not name the node type
        assert await r.complete(iid, "a", {"ok": True}) == "ok"
        assert executions(metrics)[("unknown", "completed")] == 1.0
