"""What the shared cache saves: database reads of the agent list across N processes, and
cold-start loads of definition versions.

    .venv/bin/python -m bench.cache --processes 1,4,8 --seconds 300 --db postgres

Starts its own throwaway ``redis-server`` (tests.redis_server) and, with ``--db postgres``,
PostgreSQL (tests.pg); ``--db sqlite`` uses a file. One JSON object on stdout:

- ``agents``: per process count N and mode, the agents-table reads per second summed over
  the N processes, over ``--seconds`` of *simulated* time (a fake clock: each process picks
  an agent ``--picks`` times a second; one agent registers every ``--change-every`` s).
  Modes: ``table_1s`` (today: each process re-reads the table every second), ``bus_60s``
  (changes announced on the bus, refresh 60 s, no Redis), ``bus_redis_60s`` (the same plus
  the snapshot in Redis: a change costs one table read, not N). The bus message is applied
  by calling ``invalidate()`` on the other registries (its delivery latency is measured by
  ``bench.bus_latency``). Also the wall time of one refresh: table vs Redis snapshot.
- ``latest_version_lookup``: the API's lookup of the latest published version on every
  start (all ``--latest-versions`` versions read from the table) vs the pointer a process
  keeps (dropped on publish, over the bus).
- ``definitions``: a cold process loading ``--versions`` published versions (``--nodes``
  nodes each): database reads and wall time with and without the Redis entries (median of
  ``--rounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from functools import partial
from typing import Any

import sqlalchemy as sa
from tests.pg import PostgresServer, create_database
from tests.redis_server import RedisServer

from cadenza.application.agent_snapshots import AgentSnapshots
from cadenza.application.agents import AgentRegistry
from cadenza.application.definition_cache import DefinitionCache
from cadenza.application.definitions import Definitions
from cadenza.application.ports import StoredDefinition
from cadenza.application.ports_cache import SharedCache
from cadenza.domain.agent import AgentType
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.cache.redis_cache import RedisCache
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.sql.agents import SqlAgentRepository
from cadenza.infrastructure.sql.database import create_engine, prepare_sqlite_file, upgrade
from cadenza.infrastructure.sql.queries import SqlQueries
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def counting(store: SqlStore, table: str, into: list[int]) -> None:
    def count(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        if f"FROM {table}" in statement:
            into[0] += 1

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)


async def agents_mode(url: str, cache: SharedCache | None, n: int, mode: str, a: Any) -> float:
    clock = Clock()
    reads = [0]
    stores = [SqlStore(create_engine(url)) for _ in range(n)]
    refresh = 1.0 if mode == "table_1s" else 60.0
    ids = itertools.count()
    run = uuid.uuid4().hex[:8]
    registries = []
    for store in stores:
        counting(store, "agents", reads)
        snapshots = AgentSnapshots(cache, refresh) if cache is not None else None
        repo = SqlAgentRepository(store.engine, clock)
        registries.append(
            AgentRegistry(repo, clock, lambda: f"{run}{next(ids)}", refresh, snapshots)
        )
    step = 1.0 / a.picks
    for tick in range(int(a.seconds * a.picks)):
        clock.t = tick * step
        if tick and tick % int(a.change_every * a.picks) == 0:
            await registries[0].register(f"{run}-{tick}", AgentType.WORKER, ["x"], {})
            if mode != "table_1s":
                for other in registries[1:]:
                    other.invalidate()  # what the AgentsChanged message does there
        for registry in registries:
            await registry.unavailable(["x"])
    for store in stores:
        await store.close()
    return float(reads[0] / a.seconds)


async def refresh_cost(url: str, cache: SharedCache) -> dict[str, float]:
    store = SqlStore(create_engine(url))
    repo = SqlAgentRepository(store.engine, Clock())
    snapshots = AgentSnapshots(cache, 600)
    await snapshots.load(repo.list)
    out = {}
    for name, load in (("table", repo.list), ("redis", lambda: snapshots.load(repo.list))):
        times = []
        for _ in range(300):
            t0 = time.perf_counter()
            await load()
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = round(statistics.median(times) * 1000, 4)
    out["agents"] = len(await repo.list())
    await store.close()
    return out


def document(i: int, nodes: int) -> JSONObject:
    chain = [
        {"id": f"n{k}", "type": "transform", "config": {"output": f"{{{{ {k} }}}}"}}
        for k in range(nodes)
    ]
    edges = [{"from": f"n{k}", "to": f"n{k + 1}"} for k in range(nodes - 1)]
    return {"schema": "cadenza/v1", "id": f"p{i}", "name": f"p{i}", "nodes": chain, "edges": edges}  # type: ignore[dict-item]


async def cold_load(url: str, cache: SharedCache | None, versions: int) -> tuple[int, float]:
    store = SqlStore(create_engine(url))
    reads = [0]
    counting(store, "definitions", reads)
    clock = Clock()
    definitions = Definitions(
        store, JinjaTemplates(), JsonSchemaChecks(), clock, cache=DefinitionCache(cache, clock)
    )
    t0 = time.perf_counter()
    for i in range(versions):
        await definitions.cache.version(
            "default", f"p{i}", 1, partial(store.get_definition, f"p{i}", 1)
        )
    elapsed = time.perf_counter() - t0
    await store.close()
    return reads[0], elapsed


async def definitions_bench(url: str, cache: SharedCache, a: Any) -> dict[str, Any]:
    store = SqlStore(create_engine(url))
    publisher = Definitions(store, JinjaTemplates(), JsonSchemaChecks(), Clock())
    for i in range(a.versions):
        await publisher.publish(document(i, a.nodes))
    await store.close()
    await cold_load(url, cache, a.versions)  # a warm process puts them in Redis
    out: dict[str, Any] = {"versions": a.versions, "nodes": a.nodes}
    for name, c in (("database", None), ("redis", cache)):
        runs = [await cold_load(url, c, a.versions) for _ in range(a.rounds)]
        out[name] = {
            "db_reads": runs[0][0],
            "ms": round(statistics.median(r[1] for r in runs) * 1000, 2),
        }
    return out


async def latest_lookup(url: str, a: Any) -> dict[str, Any]:
    """The API's "latest published version" lookup of every start: all versions of the
    process from the database (today) vs the pointer this process keeps (a hit)."""
    store = SqlStore(create_engine(url))
    publisher = Definitions(store, JinjaTemplates(), JsonSchemaChecks(), Clock())
    for k in range(a.latest_versions):
        doc = document(0, a.nodes)
        doc["id"], doc["name"] = "q", f"q{k}"
        await publisher.publish(doc)
    queries = SqlQueries(store.engine)

    async def load() -> StoredDefinition | None:
        found = await queries.versions("default", "q")
        return next((v for v in found if v.status == "published"), None)

    cache = DefinitionCache(None, Clock(), refresh_s=60)
    out: dict[str, Any] = {"versions": a.latest_versions, "nodes": a.nodes}
    for name, call in (("database", load), ("cached", lambda: cache.latest("default", "q", load))):
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            await call()
            times.append(time.perf_counter() - t0)
        out[f"{name}_ms"] = round(statistics.median(times) * 1000, 4)
    await store.close()
    return out


async def main(a: Any, db_url: str, redis_url: str) -> dict[str, Any]:
    cache = RedisCache(redis_url, 1 << 20)
    results: dict[str, Any] = {"db": a.db, "seconds_simulated": a.seconds, "picks_per_s": a.picks}
    agents = {}
    for n in [int(x) for x in a.processes.split(",")]:
        row = {}
        for mode in ("table_1s", "bus_60s", "bus_redis_60s"):
            await cache.incr("agents:*:generation")  # a fresh snapshot generation per run
            c = cache if mode == "bus_redis_60s" else None
            row[mode] = round(await agents_mode(db_url, c, n, mode, a), 3)
        agents[str(n)] = row
    results["agent_table_reads_per_s"] = agents
    results["agent_refresh"] = await refresh_cost(db_url, cache)
    results["definitions_cold_load"] = await definitions_bench(db_url, cache, a)
    results["latest_version_lookup"] = await latest_lookup(db_url, a)
    await cache.aclose()
    return results


def run(a: Any) -> dict[str, Any]:
    redis = RedisServer.start()
    pg = PostgresServer.start() if a.db == "postgres" else None
    try:
        if pg is not None:
            url = create_database(pg.url("postgres"))
        else:
            url = f"sqlite:///{tempfile.mkdtemp(prefix='cadenza-bench-')}/bench.db"
            prepare_sqlite_file(url)
        upgrade(url)
        return asyncio.run(main(a, url, redis.url()))
    finally:
        redis.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--processes", default="1,4,8")
    p.add_argument("--seconds", type=float, default=300)
    p.add_argument("--picks", type=int, default=10, help="selections per second per process")
    p.add_argument("--change-every", type=float, default=30.0)
    p.add_argument("--versions", type=int, default=50)
    p.add_argument("--nodes", type=int, default=30)
    p.add_argument("--latest-versions", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    json.dump(run(p.parse_args()), sys.stdout, indent=2)
    print()
