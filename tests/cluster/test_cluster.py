"""Many processes, one system: 2 API processes and 3 workers on one PostgreSQL database,
instances started round-robin over both APIs while a seeded schedule SIGKILLs random
processes and restarts them.

Checked at the end: every instance completed with the outputs of a fault-free run (one
process, SQLite); no journal has a gap or a task result recorded twice; API 1's event stream,
resumed with ``Last-Event-ID`` after each of its kills, delivered every event of every
instance (those started on API 2 included) in journal order, none twice. With
``check_metrics`` (ops ports on every role), ``/metrics`` summed over the processes agrees with
the store over a window without kills; with an external worker, no assignment result was
accepted twice.

Size: ``CADENZA_CLUSTER_INSTANCES`` (200) and ``CADENZA_CLUSTER_KILLS`` (6); ``make cluster``
runs 1,000 and 60. docs/_parts/cluster.md lists the topology lines to turn on as the rest of
issue 11 lands.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cluster import metrics
from tests.cluster.harness import Cluster
from tests.cluster.run import (
    accepted_twice,
    chaos,
    publish,
    start_many,
    until_finished,
    verify,
    victims,
)
from tests.cluster.sse import Follower
from tests.cluster.topology import ExternalWorker, Topology
from tests.cluster.workload import MCP_SERVER, build_workload, reference
from tests.crash.workload import mcp_server

from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]

SEED = 20261202
INSTANCES = int(os.environ.get("CADENZA_CLUSTER_INSTANCES", "200"))
KILLS = int(os.environ.get("CADENZA_CLUSTER_KILLS", "6"))
QUIET = 20  # instances started after the kills: the window /metrics is compared over
FINISH_TIMEOUT_S = 600.0
STREAM_TIMEOUT_S = 120.0
ENGINE_ENV = {
    # a killed worker's tasks go back to the queue within 2 s; idle workers look every 0.2 s
    "CADENZA_LEASE_S": "2",
    "CADENZA_SWEEP_INTERVAL_S": "0.2",
    "CADENZA_EGRESS_ALLOWED_HOSTS": '["127.0.0.1"]',
}


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with mcp_server() as url:
        yield url


def topology(database_url: str, mcp_url: str, **lines: object) -> Topology:
    env = ENGINE_ENV | {"CADENZA_MCP_SERVERS": f'[{{"name": "{MCP_SERVER}", "url": "{mcp_url}"}}]'}
    return Topology(database_url=database_url, env=env, **lines)  # type: ignore[arg-type]


def cluster_topology(database_url: str, mcp_url: str) -> Topology:
    """The topology of the suite. As the rest of issue 11 lands, add here (one line each):
    ``bus_url=redis_url``, ``ops_ports=True, check_metrics=True``,
    ``roles={"api": 2, "worker": 3, "agents": 2, "mcp-proxy": 1}``,
    ``external_worker=ExternalWorker(polls=2)``."""
    return topology(database_url, mcp_url, roles={"api": 2, "worker": 3})


async def test_kills_across_roles_lose_nothing_and_every_api_streams_every_event(
    pg_database_url: str, mcp_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    topo = cluster_topology(pg_database_url, mcp_url)
    workload = build_workload(rng, with_task=topo.external_worker is not None)
    await reference(workload, f"sqlite:///{tmp_path}/reference.db", mcp_url)
    store = SqlStore(create_engine(pg_database_url))
    try:
        async with Cluster(topo, tmp_path / "cluster") as cluster:
            await publish(cluster, workload)
            stream = Follower(cluster, cluster.api(1).name)
            await stream.start()
            plan = victims(rng, cluster, KILLS)
            done, started = await chaos(cluster, workload, plan, rng, store, INSTANCES)
            await until_finished(store, INSTANCES, FINISH_TIMEOUT_S, cluster)

            # the quiet window: no kills from here on
            before = metrics.Window(
                metrics.completed_sum(await metrics.scrape_all(cluster)),
                await metrics.store_completed(store.engine),
            )
            quiet = range(INSTANCES, INSTANCES + QUIET)
            started += await start_many(cluster, workload, quiet, "c")
            await until_finished(store, INSTANCES + QUIET, FINISH_TIMEOUT_S, cluster)
            scrapes = await metrics.scrape_all(cluster)
            metric_problems = metrics.problems(
                before,
                scrapes,
                await metrics.store_completed(store.engine),
                await metrics.store_running(store.engine),
            )

            ids = {s.instance_id for s in started}
            await stream.until_seen(ids, STREAM_TIMEOUT_S)
            await stream.stop()
            verdict = await verify(store, workload, started)
            accepted = ""
            if topo.external_worker is not None:
                accepted = cluster.members["external-worker-1"].log.read_text()
            tracebacks = [
                m.name for m in cluster.members.values() if "Traceback" in m.log.read_text()
            ]
    finally:
        await store.close()

    journals = verdict.stream()
    via = {s.instance_id: s.api for s in started}
    print(
        f"\n{len(started)} instances ({sum(a == 'api-2' for a in via.values())} via api-2), "
        f"{sum(len(j) for j in journals.values())} events, kills {dict(done.kills)} "
        f"({sum(done.kills.values())}, {done.with_work_left} with work left), stream "
        f"{stream.seen.connections} connections ({stream.seen.resumed} resumed), "
        f"metrics {metrics.by_member(scrapes)}, {time.monotonic() - began:.0f}s"
    )
    assert verdict.problems == []
    assert stream.seen.problems(journals) == []
    assert stream.seen.resumed >= done.kills[cluster.api(1).name] >= 1
    assert sum(done.kills.values()) == KILLS
    assert accepted_twice(accepted) == []
    if topo.check_metrics:
        assert metric_problems == []
    assert tracebacks == []


async def test_an_external_worker_process_serves_a_task_node_through_the_api(
    pg_database_url: str, mcp_url: str, tmp_path: Path
) -> None:
    """Today's shape: the external worker polls a process that runs the API and the engine
    (assignments are kept in that process's memory). Once they are stored, the suite's
    topology polls API 2 instead (``external_worker=ExternalWorker(polls=2)``)."""
    rng = random.Random(SEED)
    topo = topology(pg_database_url, mcp_url, roles={"all": 1}, external_worker=ExternalWorker())
    workload = build_workload(rng, with_task=True)
    await reference(workload, f"sqlite:///{tmp_path}/reference.db", mcp_url)
    tasks = [i for i, j in enumerate(workload.jobs) if j.process_id == "cluster-task"]
    store = SqlStore(create_engine(pg_database_url))
    try:
        async with Cluster(topo, tmp_path / "cluster") as cluster:
            await publish(cluster, workload)
            started = []
            for number in tasks:
                started += await start_many(cluster, workload, range(number, number + 1), "t")
            await until_finished(store, len(tasks), FINISH_TIMEOUT_S, cluster)
            verdict = await verify(store, workload, started)
            log = cluster.members["external-worker-1"].log.read_text()
    finally:
        await store.close()
    assert verdict.problems == []
    outputs = sorted(str(workload.job(n)[1]) for n in tasks)
    assert outputs == ["{'shout': 'LOUDER'}", "{'shout': 'QUIET'}"]
    assert len([x for x in log.splitlines() if x.startswith("accepted ")]) == len(tasks)
    assert accepted_twice(log) == []
