"""A scrape of the API's ``/metrics`` carries the readiness checks as gauges and the healthy
agents per capability, counted in the store at that scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from tests.api.harness import Client, serve
from tests.api.test_workers_api import setup

from cadenza.entrypoints.client_http import HttpWorkerTransport


async def scrape(c: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await c.get("/metrics")
    assert r.status == 200, r.body
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.body)
        for s in family.samples
    }


def capability(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("cadenza_agents_healthy_by_capability", (("capability", name),))


async def test_a_scrape_reports_the_database_reachable_and_healthy_agents_per_capability(
    database_url: str,
) -> None:
    async with serve(database_url, metrics_refresh_s=0) as srv:
        first = await scrape(srv.admin)
        assert first[("cadenza_dependency_up", (("dependency", "database"),))] == 1.0
        assert not [k for k in first if k[0] == "cadenza_agents_healthy_by_capability"]
        agent_id, secret = await setup(srv)  # a worker agent with capability "summarize"
        assert (await scrape(srv.admin))[capability("summarize")] == 0.0  # not seen yet
        async with HttpWorkerTransport(srv.base, secret) as worker:
            assert await worker.poll(agent_id, None, 0) is None  # a poll: it is healthy
        assert (await scrape(srv.admin))[capability("summarize")] == 1.0
