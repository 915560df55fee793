"""Breaker transitions and model usage become Prometheus metrics."""

from __future__ import annotations

from cadenza.domain import events as ev
from cadenza.infrastructure.observability.metrics import Metrics
from cadenza.infrastructure.resilience import Breaker


def _value(m: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return m.registry.get_sample_value(name, labels or {})


def test_breaker_state_changes_are_metrics() -> None:
    m = Metrics()
    breaker = Breaker("llm-a", threshold=2, on_change=m.on_breaker_change)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert _value(m, "cadenza_breaker_state", {"name": "llm-a"}) == 2.0
    assert _value(m, "cadenza_breaker_transitions_total", {"name": "llm-a", "to": "open"}) == 1.0


def test_committed_events_count_tasks_tokens_cost_and_latency() -> None:
    m = Metrics()
    usage: dict[str, object] = {
        "provider": "p",
        "model": "m",
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "cost": 0.5,
        "latency_s": 0.2,
    }
    started = ev.InstanceStarted(
        instance_id="i",
        event_id="e1",
        occurred_at=1.0,
        process_id="x",
        version=1,
        definition_hash="h",
        inputs={},
    )
    completed = ev.TaskCompleted(
        instance_id="i",
        event_id="e2",
        occurred_at=1.0,
        task_id="t",
        attempt=1,
        output=None,
        ports=("out",),
        usage=usage,  # type: ignore[arg-type]
    )
    failed = ev.TaskFailed(
        instance_id="i",
        event_id="e3",
        occurred_at=1.0,
        task_id="u",
        attempt=1,
        error="x",
        handled=False,
    )
    m.on_events([(1, started), (2, completed), (3, failed)])
    assert _value(m, "process_instances_active") == 1.0
    assert _value(m, "task_executions_total", {"status": "completed"}) == 1.0
    assert _value(m, "task_executions_total", {"status": "failed"}) == 1.0
    labels = {"provider": "p", "model": "m", "kind": "prompt"}
    assert _value(m, "cadenza_llm_tokens_total", labels) == 10.0
    assert _value(m, "cadenza_llm_cost_total", {"provider": "p", "model": "m"}) == 0.5
    assert _value(m, "agent_response_time_seconds_count", {"agent": "p"}) == 1.0
