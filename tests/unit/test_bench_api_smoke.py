"""The API benchmark runs end to end with tiny sizes (counts and shape only: never timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.api import percentile, summarize

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--starts", "20", "--concurrency", "4", "--subscribers", "5"]
TINY += ["--events-instances", "2", "--spacing-ms", "10", "--repeat", "1"]


def _run(argv: list[str]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.api", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr[-4000:]
    assert all(line.startswith("{") for line in lines), proc.stdout  # JSON only on stdout
    return [json.loads(line) for line in lines]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def test_both_workloads_run_against_a_served_api_and_lose_nothing() -> None:
    starts, fanout = _run(TINY)
    for summary in (starts, fanout):
        for key in ("params", "command", "git", "python", "platform", "cpu_count", "timestamp"):
            assert key in summary
        assert summary["repeat"] == 1
        assert len(summary["runs"]) == 1
        assert summary["command"].startswith("python -m bench.api --starts 20")
        assert summary["server_peak_rss_mb"] > 0

    assert starts["workload"] == "api_starts"
    assert starts["params"] == {"starts": 20, "concurrency": 4}
    assert starts["all_completed"] is True
    (run,) = starts["runs"]
    assert (run["starts"], run["distinct_ids"], run["completed"], run["failed"]) == (20, 20, 20, 0)
    for key in ("starts_per_s", "latency_p50_ms", "latency_p99_ms", "completed_per_s"):
        assert _is_number(starts[key]), key
        assert _is_number(run[key]), key
    assert run["latency_p50_ms"] <= run["latency_p99_ms"] <= run["latency_max_ms"]

    assert fanout["workload"] == "sse_fanout"
    assert fanout["params"] == {"subscribers": 5, "events_instances": 2, "spacing_ms": 10.0}
    assert fanout["all_delivered"] is True
    assert fanout["expected"] == fanout["delivered"] == 5 * 2
    (run,) = fanout["runs"]
    assert (run["lost"], run["duplicates"], run["foreign"]) == (0, 0, 0)
    assert run["messages"] >= run["delivered"]  # other event types arrive too
    for key in ("latency_p50_ms", "latency_p99_ms", "server_rss_connected_mb", "connect_s"):
        assert _is_number(fanout[key]), key
        assert _is_number(run[key]), key


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_summary_takes_medians_and_the_largest_peak() -> None:
    runs = [
        {"starts": 10, "completed": 10, "starts_per_s": s, "server_peak_rss_mb": m}
        | {"wall_s": 1.0, "latency_p50_ms": 1.0, "latency_p99_ms": 2.0, "completed_s": 1.0}
        | {"completed_per_s": 1.0, "server_cpu_s": 1.0, "client_cpu_s": 0.1}
        | {"server_rss_idle_mb": 100.0}
        for s, m in ((30.0, 190.0), (10.0, 200.0), (20.0, 180.0))
    ]
    s = summarize("api_starts", {"starts": 10, "concurrency": 2}, runs, ["--repeat", "3"])
    assert s["starts_per_s"] == 20.0
    assert s["server_peak_rss_mb"] == 200.0
    assert s["all_completed"] is True
    assert s["runs"] == runs
    assert s["command"] == "python -m bench.api --repeat 3"
