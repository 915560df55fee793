"""System-wide gauges come from the store: an instance started on API process A and finished by
worker B is seen as such in A's ``/metrics``; a failed instance retried is active again, and its
task's executions count under its node type in the process that ran them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from tests.api.harness import Client, serve
from tests.api.test_workers_api import finished, setup, start

from cadenza.entrypoints.client_http import HttpWorkerTransport


async def scrape(c: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await c.get("/metrics")
    assert r.status == 200, r.body
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.body)
        for s in family.samples
    }


def executions(node_type: str, status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("task_executions_total", (("node_type", node_type), ("status", status)))


ACTIVE = ("process_instances_active", ())


async def test_gauges_agree_across_processes_through_failure_retry_and_completion(
    database_url: str,
) -> None:
    fresh = {"metrics_refresh_s": 0}
    async with (
        serve(database_url, run_worker=False, **fresh) as a,
        serve(database_url, **fresh) as b,
    ):
        agent_id, secret = await setup(a)
        async with HttpWorkerTransport(a.base, secret) as worker:
            assert await worker.poll(agent_id, None, 0) is None
            instance_id = await start(a.admin, "hello")
            first = await worker.poll(agent_id, None, 10)  # B runs the task
            assert first is not None
            assert (await scrape(a.admin))[ACTIVE] == 1.0
            await worker.fail(first.id, "not now", retryable=False)
            failed = await finished(a.admin, instance_id)
            assert failed["status"] == "failed"
            assert (await scrape(a.admin))[ACTIVE] == 0.0
            retried = await a.admin.post(f"/api/v1/processes/instances/{instance_id}/retry")
            assert retried.status == 200, retried.body
            assert (await scrape(a.admin))[ACTIVE] == 1.0  # InstanceResumed: running again
            second = await worker.poll(agent_id, None, 10)
            assert second is not None
            await worker.complete(second.id, {"summary": "now"})
        done = await finished(a.admin, instance_id)
        assert done["status"] == "completed"
        on_a, on_b = await scrape(a.admin), await scrape(b.admin)
        assert on_a[ACTIVE] == on_b[ACTIVE] == 0.0
        assert on_a[("cadenza_task_queue_depth", ())] == 0.0
        assert on_a[("cadenza_agents_healthy", ())] == 1.0
        # counters: the process that ran the task counts it, under its node type
        assert on_b[executions("task", "failed")] == 1.0
        assert on_b[executions("task", "completed")] == 1.0
        assert executions("unknown", "completed") not in on_b
        assert executions("task", "completed") not in on_a
