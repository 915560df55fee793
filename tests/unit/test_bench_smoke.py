"""The benchmark workloads run end to end with tiny sizes (counts only: timing is never tested)."""

from __future__ import annotations

from pathlib import Path

from bench.run import summarize
from bench.workloads import run_w1, run_w2, w1_document, w2_document

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
    for key in ("workload", "params", "tasks", "database", "python", "cpu_count", "timestamp"):
        assert key in s


async def test_w3_runs_model_pipelines_against_the_local_server(tmp_path: Path) -> None:
    from bench.w3 import run_w3

    r = await run_w3(f"sqlite:///{tmp_path}/c.db", instances=3)
    assert (r.completed, r.instances, r.tasks) == (3, 3, 30)
