"""Retention soak: a steady stream of instances against a SQLite file with retention of one
minute (real clock), sampling the row counts per table and the file size, to show that they
level off instead of growing with the history (issue 13).

    PYTHONPATH=src python -m bench.retention_soak                       # 100,000 instances
    PYTHONPATH=src python -m bench.retention_soak --instances 20000 --rate 100

The all-in-one runtime (``cadenza serve``'s) runs the engine and the retention job under its
lease, as deployed; settings ``retention_finished_s`` = ``--retention-s`` (60) and
``retention_failed_s`` = twice that; every ``--failed-every``-th instance fails. Instances are
started at ``--rate`` per second (3 sequential transforms each); after the last start, sampling
goes on until every instance finished and one more retention period and run went by.

Prints one JSON object: the parameters, ``samples`` (every ``--sample-s``: seconds since the
start, instances started and finished, rows per table, the database and WAL file sizes, and
the start-to-finish latency of the instances that finished since the previous sample),
``runs`` (each retention run seen: when, how long, instances deleted), ``max`` (the largest
value of each series), ``plateau`` (the largest in the second half of the load, next to the
largest in the first half: equal when the series levelled off), the expected steady state
(rate x (retention + interval), in instances) and ``uptime`` (the machine's load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cadenza.bootstrap import Runtime, build
from cadenza.domain.commands import StartInstance
from cadenza.domain.events import Event, InstanceCancelled, InstanceCompleted, InstanceFailed
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.sql.retention import instance_tables
from cadenza.infrastructure.sql.tables import instances
from cadenza.settings import Settings

TERMINAL = (InstanceCompleted, InstanceFailed, InstanceCancelled)


def document(process_id: str, fail: bool) -> JSONObject:
    out = "{{ 1 // 0 }}" if fail else "ok"
    return {
        "schema": "cadenza/v1",
        "id": process_id,
        "name": "soak",
        "nodes": [
            {"id": "a", "type": "transform", "config": {"output": {"n": 1}}},
            {"id": "b", "type": "transform", "config": {"output": {"n": 2}}},
            {"id": "c", "type": "transform", "config": {"output": out}},
        ],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
    }


class Progress:
    """Engine listener: submit-to-terminal latency of each instance."""

    def __init__(self) -> None:
        self.submitted: dict[str, float] = {}
        self.latencies: list[float] = []
        self.finished = 0

    def __call__(self, events: list[tuple[int, Event]]) -> None:
        now = time.perf_counter()
        for _, e in events:
            if isinstance(e, TERMINAL):
                self.finished += 1
                t0 = self.submitted.pop(e.instance_id, None)
                if t0 is not None:
                    self.latencies.append(now - t0)

    def take(self) -> list[float]:
        out, self.latencies = self.latencies, []
        return out


async def counts(rt: Runtime) -> dict[str, int]:
    tables = [instances, *instance_tables()]
    stmt = sa.select(*(sa.select(sa.func.count()).select_from(t).scalar_subquery() for t in tables))
    async with rt.database().connect() as conn:
        row = (await conn.execute(stmt)).one()
    return {t.name: int(n) for t, n in zip(tables, row, strict=True)}


def sizes(db: Path) -> dict[str, int]:
    wal = db.with_name(db.name + "-wal")
    return {
        "file_bytes": db.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }


async def soak(args: argparse.Namespace, db: Path) -> dict[str, Any]:
    settings = Settings(
        database_url=f"sqlite:///{db}",
        worker_id="soak",
        retention_finished_s=args.retention_s,
        retention_failed_s=2 * args.retention_s,
        retention_interval_s=args.interval_s,
        retention_batch=args.batch,
        retention_pause_s=args.pause_s,
        log_json=False,
    )
    rt = await build(settings)
    ok = await rt.definitions.publish(document("soak-ok", fail=False))
    bad = await rt.definitions.publish(document("soak-fail", fail=True))
    progress = Progress()
    rt.engine.subscribe(progress)
    await rt.start()
    samples: list[dict[str, Any]] = []
    runs: list[dict[str, float]] = []
    t0, wall0 = time.perf_counter(), time.time()
    started = 0
    load_end: float | None = None

    async def sample() -> None:
        lat = progress.take()
        row: dict[str, Any] = {
            "t_s": round(time.perf_counter() - t0, 1),
            "started": started,
            "finished": progress.finished,
            **await counts(rt),
            **sizes(db),
            "latency_ms_median": round(statistics.median(lat) * 1000, 1) if lat else None,
            "latency_ms_max": round(max(lat) * 1000, 1) if lat else None,
        }
        samples.append(row)
        last = rt.retention.job.last_run if rt.retention else None
        if last is not None and (not runs or runs[-1]["started_at"] != last.started_at):
            runs.append(
                {
                    "started_at": last.started_at,
                    "t_s": round(last.started_at - wall0, 1),
                    "duration_s": round(last.duration_s, 3),
                    "instances": last.instances,
                    "batches": last.batches,
                    "longest_batch_s": round(last.longest_batch_s, 3),
                }
            )
        print(json.dumps(row), file=sys.stderr)

    try:
        next_sample = 0.0
        while True:
            elapsed = time.perf_counter() - t0
            due = min(args.instances, int(elapsed * args.rate))
            while started < due:
                stored = bad if args.failed_every and started % args.failed_every == 0 else ok
                start = StartInstance(stored.process_id, {}, version=stored.version)
                iid = await rt.engine.submit(start)
                assert isinstance(iid, str)
                progress.submitted[iid] = time.perf_counter()
                started += 1
            if started >= args.instances and load_end is None:
                load_end = elapsed
            if elapsed >= next_sample:
                await sample()
                next_sample += args.sample_s
            tail = args.retention_s * 2 + 2 * args.interval_s
            if load_end is not None and progress.finished >= started and elapsed > load_end + tail:
                break
            await asyncio.sleep(0.05)
        await sample()
    finally:
        await rt.close()
    return summarize(args, samples, runs, load_end or 0.0)


def summarize(
    args: argparse.Namespace,
    samples: list[dict[str, Any]],
    runs: list[dict[str, float]],
    load_end: float,
) -> dict[str, Any]:
    series = [k for k in samples[0] if k not in ("t_s", "started", "finished")] if samples else []
    loaded = [s for s in samples if s["t_s"] <= load_end]
    half = len(loaded) // 2

    def peak(rows: list[dict[str, Any]], key: str) -> Any:
        values = [r[key] for r in rows if r[key] is not None]
        return max(values) if values else None

    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return {
        "workload": "retention_soak",
        "params": {
            "instances": args.instances,
            "rate_per_s": args.rate,
            "retention_s": args.retention_s,
            "failed_retention_s": 2 * args.retention_s,
            "interval_s": args.interval_s,
            "batch": args.batch,
            "pause_s": args.pause_s,
            "failed_every": args.failed_every,
        },
        "load_s": round(load_end, 1),
        "expected_steady_instances": round(args.rate * (args.retention_s + args.interval_s)),
        "max": {k: peak(samples, k) for k in series},
        "plateau": {
            k: {"first_half_max": peak(loaded[:half], k), "second_half_max": peak(loaded[half:], k)}
            for k in series
        },
        "final": samples[-1] if samples else {},
        "runs": runs,
        "samples": samples,
        "uptime": uptime.strip(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--instances", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=200.0, help="instances started per second")
    p.add_argument("--retention-s", type=float, default=60.0, help="at least 60")
    p.add_argument("--interval-s", type=float, default=10.0, help="retention job interval")
    p.add_argument("--batch", type=int, default=500, help="instances per retention transaction")
    p.add_argument("--pause-s", type=float, default=0.05, help="pause between batches")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--failed-every", type=int, default=10, help="0: none fail")
    p.add_argument("--database", type=Path, default=None, help="default: a temporary file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cadenza-soak-") as tmp:
        db = args.database or Path(tmp) / "soak.db"
        result = asyncio.run(soak(args, db))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
