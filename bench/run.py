"""Run the benchmarks and print one JSON object per workload on stdout (DESIGN §10).

    .venv/bin/python -m bench.run --workload all
    .venv/bin/python -m bench.run --workload w2 --n 10000 --repeat 5
    .venv/bin/python -m bench.run --workload w1 --profile /tmp/bench-prof
    .venv/bin/python -m bench.run --workload w1seq --repeat 3
    .venv/bin/python -m bench.run --workload all --postgres   # a throwaway local PostgreSQL

Every run is a fresh subprocess (so ``peak_rss_mb`` belongs to one workload) on a fresh
temporary SQLite file (WAL, synchronous=NORMAL: durable persistence on). The clock runs from
the first StartInstance submit until every instance's terminal event has committed; database
creation, migrations and publishing are outside it. Progress goes to stderr; stdout carries
only the JSON lines, one per workload:

    wall_s        median over --repeat runs (wall_s_runs lists them, wall_s_min the best)
    tasks         nodes of the document that ran (W1: instances x nodes; W2: n waits + 2)
    task_rows     rows in the tasks table, including the implicit start and end nodes
    tasks_per_s   tasks / wall_s (steps/s: every task is one step of its workflow)
    latency_ms_median, latency_ms_p99
                  w1/w1seq: start-to-terminal time of one instance (submit until its
                  terminal event committed), median and p99 (nearest rank) within a run;
                  the summary gives the median of those over the runs
    cpu_s         median CPU time of the process (all threads) inside the window
    peak_rss_mb   largest ru_maxrss over the runs (the child's whole life, imports included;
                  baseline_rss_mb is the peak before the engine was built)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.w3 import run_w3
from bench.workloads import Result, Window, peak_rss_mb, run_w1, run_w1seq, run_w2
from cadenza.bootstrap import tune_gc

TARGETS: dict[str, dict[str, float]] = {
    "w1": {"tasks_per_s_min": 10_000.0},
    "w1seq": {"tasks_per_s_min": 5_000.0},  # issue 10: one workflow's steps
    "w2": {"wall_s_max": 1.0, "peak_rss_mb_max": 200.0},  # for n = 10,000
    "w3": {"wall_s_max": 0.6},
}


def git_revision() -> str:
    """The commit measured, with ``-dirty`` when the working tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return rev


def describe_database(url: str | None) -> str:
    if url is None:
        return "sqlite (fresh temporary file per run; WAL, synchronous=NORMAL)"
    return make_url(url).render_as_string(hide_password=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


# ---- child: one run ----------------------------------------------------------------------


@contextlib.contextmanager
def _profiled(out_dir: Path, name: str) -> Iterator[object]:
    from pyinstrument import Profiler

    # async_mode="disabled": sample the whole event-loop thread (engine loop, worker tasks),
    # not only the task that opened the window. aiosqlite's own thread is not sampled: its
    # time shows as the loop waiting in select().
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        yield profiler
    finally:
        profiler.stop()
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{name}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False)
        )
        (out_dir / f"{name}.html").write_text(profiler.output_html())


async def _child(spec: dict[str, Any]) -> Result:
    workload, params = str(spec["workload"]), dict(spec["params"])
    url = spec.get("database_url")
    warm = not spec.get("cold_plan", False)
    window: Window | None = None
    if spec.get("profile"):
        out, name = Path(spec["profile"]), f"{workload}-{'-'.join(map(str, params.values()))}"
        window = lambda: _profiled(out, name)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as tmp:
        db = url or f"sqlite:///{tmp}/bench.db"
        if workload == "w1":
            return await run_w1(
                db, params["instances"], params["nodes"], warm_plan=warm, window=window
            )
        if workload == "w1seq":
            return await run_w1seq(
                db, params["instances"], params["nodes"], warm_plan=warm, window=window
            )
        if workload == "w2":
            return await run_w2(db, params["n"], warm_plan=warm, window=window)
        if workload == "w3":
            return await run_w3(db, params["instances"])
    raise SystemExit(f"unknown workload {workload!r}")


def child_main(spec: dict[str, Any]) -> None:
    tune_gc()  # the benchmark process is configured as `cadenza worker` configures itself
    rss_before = peak_rss_mb()
    r = asyncio.run(_child(spec))
    out = {
        "workload": r.workload,
        "params": r.params,
        "wall_s": r.wall_s,
        "cpu_s": r.cpu_s,
        "tasks": r.tasks,
        "task_rows": r.task_rows,
        "tasks_per_s": r.tasks_per_s,
        "instances": r.instances,
        "completed": r.completed,
        "task_status": r.task_status,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "baseline_rss_mb": round(rss_before, 1),
        "rss_at_start_mb": round(r.rss_at_start_mb, 1),
    }
    if r.latencies_s:
        out["latency_ms_median"] = round(statistics.median(r.latencies_s) * 1000, 3)
        out["latency_ms_p99"] = round(percentile(r.latencies_s, 99) * 1000, 3)
    print(json.dumps(out), flush=True)


# ---- parent: orchestration ---------------------------------------------------------------


def run_child(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.run", "--child", json.dumps(spec)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout_s, cwd=Path(__file__).parent.parent
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"benchmark child failed ({proc.returncode}): {spec}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _verdict(workload: str, params: dict[str, int], summary: dict[str, Any]) -> dict[str, Any]:
    if workload in ("w1", "w1seq"):
        goal = TARGETS[workload]["tasks_per_s_min"]
        return {"tasks_per_s_min": goal, "met": summary["tasks_per_s"] >= goal}
    if workload == "w3":
        goal = TARGETS["w3"]["wall_s_max"]
        return {"wall_s_max": goal, "met": summary["wall_s"] < goal}
    if workload == "w2" and params["n"] == 10_000:
        t = TARGETS["w2"]
        met = summary["wall_s"] < t["wall_s_max"] and summary["peak_rss_mb"] < t["peak_rss_mb_max"]
        return {**t, "met": met}
    return {}


def summarize(
    workload: str, params: dict[str, int], runs: list[dict[str, Any]], database: str
) -> dict[str, Any]:
    walls = [float(r["wall_s"]) for r in runs]
    wall = statistics.median(walls)
    tasks = int(runs[0]["tasks"])
    summary: dict[str, Any] = {
        "workload": workload,
        "params": params,
        "wall_s": round(wall, 4),
        "tasks": tasks,
        "task_rows": int(runs[0]["task_rows"]),
        "tasks_per_s": round(tasks / wall, 1) if wall > 0 else 0.0,
        "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in runs),
        "database": database,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "git": git_revision(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "repeat": len(runs),
        "wall_s_runs": [round(w, 4) for w in walls],
        "wall_s_min": round(min(walls), 4),
        "cpu_s": round(statistics.median(float(r["cpu_s"]) for r in runs), 4),
        "peak_rss_mb_runs": [float(r["peak_rss_mb"]) for r in runs],
        "baseline_rss_mb": max(float(r["baseline_rss_mb"]) for r in runs),
        "rss_at_start_mb": max(float(r.get("rss_at_start_mb", 0.0)) for r in runs),
        "all_completed": all(r["completed"] == r["instances"] for r in runs),
    }
    for key in ("latency_ms_median", "latency_ms_p99"):
        if all(key in r for r in runs):
            summary[key] = round(statistics.median(float(r[key]) for r in runs), 3)
    summary["target"] = _verdict(workload, params, summary)
    return summary


def plan_runs(args: argparse.Namespace) -> list[tuple[str, dict[str, int]]]:
    runs: list[tuple[str, dict[str, int]]] = []
    if args.workload in ("w1", "all"):
        runs.append(("w1", {"instances": args.instances, "nodes": args.nodes}))
    if args.workload in ("w1seq", "all"):
        runs.append(("w1seq", {"instances": args.instances, "nodes": args.nodes}))
    if args.workload in ("w2", "all"):
        runs += [("w2", {"n": int(n)}) for n in str(args.n).split(",") if n.strip()]
    if args.workload in ("w3", "all"):
        runs.append(("w3", {"instances": args.w3_instances}))
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=("w1", "w1seq", "w2", "w3", "all"), default="all")
    p.add_argument("--w3-instances", type=int, default=100, help="W3 instances")
    p.add_argument("--n", default="1000,10000", help="W2 fan-out sizes, comma separated")
    p.add_argument("--instances", type=int, default=200, help="W1 / w1seq instances")
    p.add_argument("--nodes", type=int, default=10, help="W1 sequential nodes per instance")
    p.add_argument(
        "--database-url",
        default=None,
        help="use this database for every run instead of a fresh SQLite file "
        "(it must be disposable: runs are counted by their own instance ids)",
    )
    p.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL server on loopback (tests/pg.py) and give every run "
        "a fresh database on it",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per workload; wall_s is the median")
    p.add_argument(
        "--cold-plan",
        action="store_true",
        help="do not compile the plan before the clock starts (the first start compiles it)",
    )
    p.add_argument("--profile", default=None, help="write pyinstrument profiles to this dir")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child is not None:
        child_main(json.loads(args.child))
        return
    database = describe_database(args.database_url)
    with _postgres(args.postgres) as fresh_database:
        if args.postgres:
            database = "postgresql (fresh database per run on a throwaway local server)"
        for workload, params in plan_runs(args):
            _run_workload(args, workload, params, database, fresh_database)


@contextlib.contextmanager
def _postgres(wanted: bool) -> Iterator[Callable[[], str | None]]:
    """A factory of fresh databases: on a throwaway PostgreSQL server when ``wanted``."""
    if not wanted:
        yield lambda: None
        return
    from tests.pg import PostgresServer, create_database

    server = PostgresServer.start()
    try:
        yield lambda: create_database(server.url("postgres"))
    finally:
        server.stop()


def _run_workload(
    args: argparse.Namespace,
    workload: str,
    params: dict[str, int],
    database: str,
    fresh_database: Callable[[], str | None],
) -> None:
    spec: dict[str, Any] = {
        "workload": workload,
        "params": params,
        "database_url": args.database_url,
        "cold_plan": args.cold_plan,
    }
    results = []
    for i in range(max(1, args.repeat)):
        spec["database_url"] = fresh_database() or args.database_url
        r = run_child(spec, args.timeout)
        _progress(f"run {i + 1}/{args.repeat}", workload, params, r)
        results.append(r)
    print(json.dumps(summarize(workload, params, results, database)), flush=True)
    if args.profile:  # an extra run: the sampling overhead stays out of the figures
        spec["database_url"] = fresh_database() or args.database_url
        r = run_child({**spec, "profile": args.profile}, args.timeout)
        _progress(f"profiled run (not counted) -> {args.profile}", workload, params, r)


def _progress(what: str, workload: str, params: dict[str, int], r: dict[str, Any]) -> None:
    latency = ""
    if "latency_ms_median" in r:
        latency = f", latency {r['latency_ms_median']:.1f}/{r['latency_ms_p99']:.1f} ms p50/p99"
    print(
        f"# {workload} {params} {what}: wall {r['wall_s']:.3f}s, "
        f"{r['tasks_per_s']:.0f} tasks/s{latency}, peak rss {r['peak_rss_mb']} MB",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
