"""The benchmark workloads run end to end with tiny sizes (counts only: timing is never tested)."""

from __future__ import annotations

from pathlib import Path

from bench.run import parse_args, percentile, plan_runs, summarize
from bench.workloads import run_w1, run_w1seq, run_w2, w1_document, w2_document

from cadenza.domain.json import JSON


def _list(value: JSON) -> list[JSON]:
    assert isinstance(value, list)
    return value


def test_documents_have_the_advertised_shape() -> None:
    w1 = w1_document(3)
    assert [n["id"] for n in _list(w1["nodes"]) if isinstance(n, dict)] == ["n1", "n2", "n3"]
    assert w1["edges"] == [{"from": "n1", "to": "n2"}, {"from": "n2", "to": "n3"}]
    w2 = w2_document(4)
    assert len(_list(w2["nodes"])) == 4 + 2
    assert len(_list(w2["edges"])) == 2 * 4


async def test_w1_runs_every_instance_to_completion(tmp_path: Path) -> None:
    r = await run_w1(f"sqlite:///{tmp_path}/w1.db", instances=3, nodes=3)
    assert (r.instances, r.completed) == (3, 3)
    assert r.tasks == 3 * 3  # the no-op nodes only
    assert r.task_rows == 3 * (3 + 2)  # plus the implicit start and end of each instance
    assert r.task_status == {"completed": r.task_rows}
    assert r.wall_s > 0
    assert r.tasks_per_s > 0


async def test_w1seq_runs_the_instances_one_after_another(tmp_path: Path) -> None:
    r = await run_w1seq(f"sqlite:///{tmp_path}/w1seq.db", instances=3, nodes=3)
    assert (r.workload, r.instances, r.completed) == ("w1seq", 3, 3)
    assert r.tasks == 3 * 3
    assert r.task_rows == 3 * (3 + 2)
    assert r.task_status == {"completed": r.task_rows}
    assert len(r.latencies_s) == 3  # one start-to-terminal time per instance
    # one in flight at a time: the instances' latencies add up to no more than the window
    assert sum(r.latencies_s) <= r.wall_s


def test_all_includes_the_sequential_w1() -> None:
    names = [w for w, _ in plan_runs(parse_args(["--workload", "all"]))]
    assert names == ["w1", "w1seq", "w2", "w2", "w3"]
    assert plan_runs(parse_args(["--workload", "w1seq", "--instances", "7"])) == [
        ("w1seq", {"instances": 7, "nodes": 10})
    ]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 201)]
    assert percentile(values, 50) == 100.0
    assert percentile(values, 99) == 198.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 99) == 0.0


async def test_w2_fans_out_waits_and_joins(tmp_path: Path) -> None:
    r = await run_w2(f"sqlite:///{tmp_path}/w2.db", n=20)
    assert (r.instances, r.completed) == (1, 1)
    assert r.tasks == 20 + 2  # the waits, the fan-out node and the join
    assert r.task_rows == 20 + 4  # plus the implicit start and end
    assert r.task_status == {"completed": r.task_rows}


def test_summary_reports_the_median_of_repeats() -> None:
    runs = [
        {"wall_s": w, "cpu_s": 0.1, "tasks": 10, "task_rows": 12, "peak_rss_mb": m}
        | {"baseline_rss_mb": 60.0, "completed": 1, "instances": 1}
        for w, m in ((3.0, 90.0), (1.0, 95.0), (2.0, 80.0))
    ]
    s = summarize("w1", {"instances": 1, "nodes": 10}, runs, "sqlite")
    assert s["wall_s"] == 2.0
    assert s["wall_s_runs"] == [3.0, 1.0, 2.0]
    assert s["tasks_per_s"] == 5.0
    assert s["peak_rss_mb"] == 95.0
    assert s["all_completed"] is True
    assert "latency_ms_median" not in s  # only when every run reported it


def test_summary_reports_the_median_latencies_of_the_runs() -> None:
    runs = [
        {"wall_s": 1.0, "cpu_s": 0.1, "tasks": 10, "task_rows": 12, "peak_rss_mb": 90.0}
        | {"baseline_rss_mb": 60.0, "completed": 1, "instances": 1}
        | {"latency_ms_median": med, "latency_ms_p99": p99}
        for med, p99 in ((4.0, 9.0), (2.0, 7.0), (3.0, 8.0))
    ]
    s = summarize("w1seq", {"instances": 1, "nodes": 10}, runs, "sqlite")
    assert (s["latency_ms_median"], s["latency_ms_p99"]) == (3.0, 8.0)
    assert s["target"] == {"tasks_per_s_min": 5_000.0, "met": False}
    for key in ("workload", "params", "tasks", "database", "python", "cpu_count", "timestamp"):
        assert key in s


async def test_w3_runs_model_pipelines_against_the_local_server(tmp_path: Path) -> None:
    from bench.w3 import run_w3

    r = await run_w3(f"sqlite:///{tmp_path}/c.db", instances=3)
    assert (r.completed, r.instances, r.tasks) == (3, 3, 30)


def test_startup_summary_reports_the_median_and_the_worker_goal() -> None:
    from bench.startup import summarize as summarize_startup

    s = summarize_startup("worker", [1.5, 0.5, 0.9], include_migrations=False)
    assert (s["ready_s"], s["ready_s_min"], s["ready_s_max"]) == (0.9, 0.5, 1.5)
    assert s["ready_s_runs"] == [1.5, 0.5, 0.9]
    assert s["goal_s"] == {"ready_s_max": 1.0, "met": True}
    assert "goal_s" not in summarize_startup("help", [0.3], include_migrations=False)
