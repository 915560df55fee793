"""The readiness checks as gauges (``cadenza_dependency_up``) and the healthy agents per
capability (``cadenza_agents_healthy_by_capability``), which the alert rules read."""

from __future__ import annotations

from cadenza.infrastructure.observability import gauges
from cadenza.infrastructure.observability.gauges import (
    SystemCounts,
    SystemGauges,
    capability_counts,
)
from cadenza.infrastructure.observability.metrics import Metrics


def _value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_readiness_checks_set_the_dependency_gauges_and_ignore_other_checks() -> None:
    m = Metrics()
    m.on_readiness({"database": "ok", "engine": "stopped"})
    assert _value(m, "cadenza_dependency_up", dependency="database") == 1.0
    assert _value(m, "cadenza_dependency_up", dependency="bus") is None
    assert _value(m, "cadenza_dependency_up", dependency="engine") is None
    m.on_readiness({"database": "unreachable: no answer in 5s", "bus": "ok"})
    assert _value(m, "cadenza_dependency_up", dependency="database") == 0.0
    assert _value(m, "cadenza_dependency_up", dependency="bus") == 1.0
    m.on_readiness({"database": "ok", "bus": "unavailable: ConnectionError"})
    assert _value(m, "cadenza_dependency_up", dependency="database") == 1.0
    assert _value(m, "cadenza_dependency_up", dependency="bus") == 0.0


def test_capabilities_count_healthy_agents_and_leave_draining_ones_out() -> None:
    agents = [
        ("healthy", ["sql", "web"]),
        ("unhealthy", ["sql", "mail"]),
        ("unknown", ["pdf"]),
        ("draining", ["gpu", "sql"]),
        ("healthy", ["sql"]),
    ]
    assert capability_counts(agents) == {"mail": 0, "pdf": 0, "sql": 2, "web": 1}


def test_capabilities_past_the_label_limit_are_dropped_in_name_order() -> None:
    n = gauges.MAX_CAPABILITY_LABELS
    names = [f"c{i:04d}" for i in range(n + 3)]
    counted = capability_counts([("healthy", reversed(names))])
    assert list(counted) == names[:n]


def test_a_capability_no_agent_has_any_more_loses_its_series() -> None:
    m = Metrics()
    m.set_capabilities({"sql": 0, "web": 2})
    assert _value(m, "cadenza_agents_healthy_by_capability", capability="sql") == 0.0
    assert _value(m, "cadenza_agents_healthy_by_capability", capability="web") == 2.0
    m.set_capabilities({"web": 1})
    assert _value(m, "cadenza_agents_healthy_by_capability", capability="sql") is None
    assert _value(m, "cadenza_agents_healthy_by_capability", capability="web") == 1.0


async def test_the_system_gauges_refresh_sets_the_capability_gauge() -> None:
    m = Metrics()

    async def counts() -> SystemCounts:
        return SystemCounts(0, 0, 1, {"sql": 1, "mail": 0})

    await SystemGauges(m, counts, min_interval_s=0).refresh()
    assert _value(m, "cadenza_agents_healthy_by_capability", capability="sql") == 1.0
    assert _value(m, "cadenza_agents_healthy_by_capability", capability="mail") == 0.0


def test_labelled_gauges_with_no_series_still_declare_their_type() -> None:
    """The dashboards' queries are checked against ``# TYPE`` lines: they exist before use."""
    from prometheus_client import generate_latest

    text = generate_latest(Metrics().registry).decode()
    assert "# TYPE cadenza_dependency_up gauge" in text
    assert "# TYPE cadenza_agents_healthy_by_capability gauge" in text
