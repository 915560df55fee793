"""Worker scaling (issue 11): W1 (concurrent) and W2 on PostgreSQL with 1, 2, 3, ...
``cadenza worker`` processes, instances started by one API-less starter.

    .venv/bin/python -m bench.scale --workers 1,2,3 --json
    .venv/bin/python -m bench.scale --workers 1,3 --w1-instances 200 --w2-n 10000

For each workload and worker count: a throwaway PostgreSQL server (tests/pg.py) gets a fresh
database, ``cadenza db upgrade`` creates the schema, W ``cadenza worker`` processes start and
report ``worker <id> running``, then the starter (an engine in this process built with
``run_worker=False``, as bench/run.py builds its engine, not an API process) publishes the
document and submits the instances; the clock runs from the first submit until the store
shows every instance finished (read every 20 ms). The starter's engine is closed as soon as its
submits committed, so timers and claims are all the workers' own.

Settings of every process: ``CADENZA_SWEEP_INTERVAL_S=0.05`` (workers find work queued by
another process at their next sweep: the default 1 s would dominate both workloads) and, for
W1, ``CADENZA_ENGINE_INLINE_PURE=false``: with inline pure nodes (the default) the process
that commits a step computes the next no-op transforms itself, so the starter would run all of
W1 and the workers none of it.

Each point is run ``--repeat`` times (3); the median run by wall time is printed, with
``wall_s_runs``. Reported: ``wall_s``, ``tasks_per_s``, ``scaling`` (tasks/s over the 1-worker
point's), and CPU seconds from before the publish to the end (a wider window than the clock's):
``worker_cpu_s`` per worker process (how the work spread), ``starter_cpu_s`` and
``postgres_cpu_s`` (the backends serving the run's database); the machine's load average
before and after, and ``uptime`` at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.run import git_revision
from bench.workloads import w1_document, w2_document
from cadenza.bootstrap import build
from cadenza.domain.commands import StartInstance
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 600.0
POLL_S = 0.02  # a benchmark may poll the store; tests may not
MAX_NODES = 20_000  # W2 at n = 10,000 is a document of 10,002 nodes


@dataclass
class Workload:
    name: str
    document: JSONObject
    instances: int
    tasks: int  # nodes of the document that run, over all instances
    env: dict[str, str]


def workloads(args: argparse.Namespace) -> list[Workload]:
    out = []
    if args.w1_instances:
        out.append(
            Workload(
                "w1",
                w1_document(args.nodes),
                args.w1_instances,
                args.w1_instances * args.nodes,
                {"CADENZA_ENGINE_INLINE_PURE": "false"},
            )
        )
    for n in (int(x) for x in str(args.w2_n).split(",") if x.strip()):
        out.append(Workload(f"w2-{n}", w2_document(n), 1, n + 2, {}))
    return out


# ``--bus redis``: every process on a Redis Streams bus (a throwaway redis-server); workers are
# woken by the outbox relay's messages, so they keep the default 1 s sweep interval
BUS = {"url": "", "sweep_interval_s": "0.05"}


def _env(url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    if BUS["url"]:
        env["CADENZA_BUS_URL"] = BUS["url"]
    env.update(
        CADENZA_DATABASE_URL=url,
        CADENZA_SWEEP_INTERVAL_S=BUS["sweep_interval_s"],
        CADENZA_MAX_DEFINITION_NODES=str(MAX_NODES),
        CADENZA_LOG_JSON="false",
        CADENZA_SHUTDOWN_GRACE_S="0",
        COLUMNS="500",
        **extra,
    )
    return env


def _start_workers(count: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(1, count + 1):
        log = (logs / f"worker-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "cadenza", "worker"],
                env=env | {"CADENZA_WORKER_ID": f"bench-worker-{i}"},
                cwd=logs,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    for i, p in enumerate(procs, 1):
        log_path = logs / f"worker-{i}.log"
        while b" running on " not in log_path.read_bytes():
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {i} did not start:\n{log_path.read_text()}")
            time.sleep(POLL_S)
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _cpu(procs: list[subprocess.Popen[bytes]]) -> list[float]:
    out = []
    for p in procs:
        t = psutil.Process(p.pid).cpu_times()
        out.append(t.user + t.system)
    return out


def _postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database`` (its process title names
    the database); a backend that exits before the second reading is not counted."""
    out: dict[int, float] = {}
    for p in psutil.process_iter(["cmdline"]):
        title = " ".join(p.info["cmdline"] or [])
        if title.startswith("postgres: ") and f" {database} " in title:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
    return out


async def _start_and_wait(url: str, w: Workload) -> tuple[float, int]:
    """Submit the instances (the clock starts at the first submit); wait for every one to
    finish. (wall seconds, instances completed)."""
    settings = Settings(
        database_url=url,
        max_definition_nodes=MAX_NODES,
        engine_inline_pure=w.env.get("CADENZA_ENGINE_INLINE_PURE", "true") == "true",
        log_json=False,
        bus_url=BUS["url"] or "memory://",
    )
    rt = await build(settings, migrate=False, run_worker=False)
    stored = await rt.definitions.publish(w.document)
    rt.definitions.plan_for(stored)
    await rt.engine.start()
    start = StartInstance(stored.process_id, {}, version=stored.version, inputs_checked=True)
    t0 = time.perf_counter()
    try:
        ids = await asyncio.gather(*(rt.engine.submit(start) for _ in range(w.instances)))
    finally:
        await rt.close()
    store = SqlStore(create_engine(url))
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            counts = await store.count_instances()
            if sum(counts.values()) >= len(ids) and not counts.get("running"):
                return time.perf_counter() - t0, counts.get("completed", 0)
            if time.monotonic() > deadline:
                raise SystemExit(f"{w.name}: not finished in {RUN_TIMEOUT_S:g}s: {counts}")
            await asyncio.sleep(POLL_S)
    finally:
        await store.close()


def run_once(server_url: str, w: Workload, workers: int) -> dict[str, Any]:
    from tests.pg import create_database

    url = create_database(server_url)
    env = _env(url, w.env)
    subprocess.run(
        [sys.executable, "-m", "cadenza", "db", "upgrade"],
        env=env, cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cadenza-scale-") as tmp:
        procs = _start_workers(workers, env, Path(tmp))
        try:
            database = url.rsplit("/", 1)[1]
            load_before = os.getloadavg()
            cpu0, me0, pg0 = _cpu(procs), time.process_time(), _postgres_cpu(database)
            wall, completed = asyncio.run(_start_and_wait(url, w))
            cpu1, me1, pg1 = _cpu(procs), time.process_time(), _postgres_cpu(database)
            load_after = os.getloadavg()
        finally:
            _stop(procs)
    return {
        "workload": w.name,
        "workers": workers,
        "instances": w.instances,
        "completed": completed,
        "tasks": w.tasks,
        "wall_s": round(wall, 3),
        "tasks_per_s": round(w.tasks / wall, 1),
        "worker_cpu_s": [round(b - a, 2) for a, b in zip(cpu0, cpu1, strict=True)],
        "starter_cpu_s": round(me1 - me0, 2),
        "postgres_cpu_s": round(sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items()), 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }


def _log_lock_waits(url: str) -> None:
    import asyncpg
    from tests.pg import run_async

    async def configure() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("ALTER SYSTEM SET log_lock_waits = on")
            await conn.execute("ALTER SYSTEM SET deadlock_timeout = '20ms'")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    run_async(configure)


def _lock_waits(root: Path) -> int:
    """Lock waits the server logged so far (with ``--lock-waits``)."""
    log = root / "server.log"
    return log.read_text(errors="replace").count(" still waiting for ") if log.exists() else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="1,2,3", help="worker process counts, comma separated")
    p.add_argument("--w1-instances", type=int, default=200, help="W1 instances (0: skip W1)")
    p.add_argument("--nodes", type=int, default=10, help="W1 sequential nodes per instance")
    p.add_argument("--w2-n", default="10000", help="W2 fan-out sizes, comma separated")
    p.add_argument("--repeat", type=int, default=3, help="runs per point; the median is shown")
    p.add_argument(
        "--lock-waits",
        action="store_true",
        help="have PostgreSQL log lock waits of 20 ms or more; report their count per run",
    )
    p.add_argument(
        "--bus",
        choices=["none", "redis"],
        default="none",
        help="redis: all processes on a Redis Streams bus (workers woken by it, 1 s sweeps); "
        "none: the in-process bus, workers sweep every 0.05 s",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per run on stdout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from tests.pg import PostgresServer

    args = parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    server = PostgresServer.start()
    results: list[dict[str, Any]] = []
    redis = None
    if args.bus == "redis":
        from tests.redis_server import RedisServer

        redis = RedisServer.start()
        BUS.update(url=redis.url(), sweep_interval_s="1.0")
    try:
        if args.lock_waits:
            _log_lock_waits(server.url("postgres"))
        for w in workloads(args):
            base: float | None = None
            for n in counts:
                runs = []
                for _ in range(args.repeat):
                    waits = _lock_waits(server.root)
                    runs.append(run_once(server.url("postgres"), w, n))
                    if args.lock_waits:
                        runs[-1]["lock_waits"] = _lock_waits(server.root) - waits
                runs.sort(key=lambda x: float(x["wall_s"]))
                r = runs[len(runs) // 2]  # the median run
                r["wall_s_runs"] = [x["wall_s"] for x in runs]
                base = base or (r["tasks_per_s"] if n == 1 else None)
                r["scaling"] = round(r["tasks_per_s"] / base, 2) if base else None
                results.append(r)
                line = json.dumps(r) if args.json else _human(r)
                print(line, flush=True)
    finally:
        server.stop()
        if redis is not None:
            redis.stop()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    summary = {
        "summary": True,
        "database": "postgresql (throwaway local server, fresh database per run)",
        "bus": "redis streams (throwaway local server)" if args.bus == "redis" else "in-process",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "git": git_revision(),
        "uptime": uptime.strip(),
    }
    print(json.dumps(summary) if args.json else _human(summary), flush=True)


def _human(r: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in r.items())


if __name__ == "__main__":
    main()
