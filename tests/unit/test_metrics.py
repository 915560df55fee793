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
    scheduled = [
        ev.TaskScheduled(
            instance_id="i",
            event_id=f"s-{task}",
            occurred_at=0.5,
            task_id=task,
            scope="",
            node_id=task,
            node_type=node_type,
            attempt=1,
            available_at=0.5,
        )
        for task, node_type in (("t", "llm"), ("u", "http"))
    ]
    m.on_events([(1, started), (2, scheduled[0]), (3, scheduled[1]), (4, completed), (5, failed)])
    assert _value(m, "task_executions_total", {"node_type": "llm", "status": "completed"}) == 1.0
    assert _value(m, "task_executions_total", {"node_type": "http", "status": "failed"}) == 1.0
    assert _value(m, "cadenza_task_duration_seconds_sum", {"node_type": "llm"}) == 0.5
    labels = {"provider": "p", "model": "m", "kind": "prompt"}
    assert _value(m, "cadenza_llm_tokens_total", labels) == 10.0
    assert _value(m, "cadenza_llm_cost_total", {"provider": "p", "model": "m"}) == 0.5
    assert _value(m, "agent_response_time_seconds_count", {"agent": "p"}) == 1.0


def test_task_of_another_process_counts_as_unknown_and_requeues_are_lease_expiries() -> None:
    m = Metrics()
    requeued = ev.TaskRequeued(
        instance_id="i", event_id="e1", occurred_at=1.0, task_id="t", reason="lease expired"
    )
    completed = ev.TaskCompleted(
        instance_id="i",
        event_id="e2",
        occurred_at=3.0,
        task_id="t",
        attempt=1,
        output=None,
        ports=("out",),
    )
    m.on_events([(1, requeued), (2, completed)])
    assert _value(m, "cadenza_lease_expiries_total") == 1.0
    labels = {"node_type": "unknown", "status": "completed"}
    assert _value(m, "task_executions_total", labels) == 1.0
    assert _value(m, "cadenza_task_duration_seconds_sum", {"node_type": "unknown"}) == 2.0


def test_a_requeue_after_the_holder_died_counts_as_a_worker_death_not_an_expiry() -> None:
    m = Metrics()
    expired = ev.TaskRequeued(
        instance_id="i", event_id="e1", occurred_at=1.0, task_id="t", reason="lease expired"
    )
    crashed = ev.TaskRequeued(
        instance_id="i",
        event_id="e2",
        occurred_at=2.0,
        task_id="t",
        reason="the process of w/1 died holding it",
        charged=False,
        crashed=True,
    )
    released = ev.TaskRequeued(
        instance_id="i", event_id="e3", occurred_at=3.0, task_id="t", reason="stop", charged=False
    )
    m.on_events([(1, expired), (2, crashed), (3, released)])
    assert _value(m, "cadenza_lease_expiries_total") == 1.0
    assert _value(m, "cadenza_task_worker_deaths_total") == 1.0


def test_http_requests_are_counted_by_route_template() -> None:
    m = Metrics()
    m.on_request("GET", "/api/v1/instances/{instance_id}", 200, 0.01)
    m.on_request("GET", "/api/v1/instances/{instance_id}", 200, 0.03)
    labels = {"method": "GET", "route": "/api/v1/instances/{instance_id}"}
    assert _value(m, "http_requests_total", {**labels, "status": "200"}) == 2.0
    assert _value(m, "http_request_duration_seconds_count", labels) == 2.0


def test_a_retried_task_keeps_its_node_type() -> None:
    m = Metrics()

    def commit(*events: ev.Event) -> None:
        m.on_events([(n, e) for n, e in enumerate(events, 1)])

    commit(
        ev.InstanceStarted(process_id="x", version=1, definition_hash="h", inputs={}),
        ev.TaskScheduled(
            task_id="t", scope="", node_id="n", node_type="llm", attempt=1, available_at=1
        ),
        ev.TaskFailed(task_id="t", attempt=1, error="boom", handled=False),
        ev.InstanceFailed(error="boom"),
    )
    commit(
        ev.InstanceResumed(reason="retry from failure"),
        ev.TaskReset(task_id="t", attempt=2, available_at=2.0),
        ev.TaskCompleted(task_id="t", attempt=2, output=None, ports=("out",)),
    )
    completed = {"node_type": "llm", "status": "completed"}
    assert _value(m, "task_executions_total", completed) == 1.0
    assert (
        _value(m, "task_executions_total", {"node_type": "unknown", "status": "completed"}) is None
    )


def test_a_task_scheduled_by_another_process_counts_the_node_type_its_worker_ran() -> None:
    m = Metrics()
    m.on_task_started("t", "http")  # the local worker starts a task it claimed
    m.on_events(
        [
            (1, ev.TaskLeased(task_id="t", leased_to="w", lease_token="x", lease_expires_at=9.0)),
            (2, ev.TaskCompleted(task_id="t", attempt=1, output=None, ports=("out",))),
        ]
    )
    labels = {"node_type": "http", "status": "completed"}
    assert _value(m, "task_executions_total", labels) == 1.0
    assert _value(m, "task_executions_total", {**labels, "node_type": "unknown"}) is None


def test_engine_events_leave_the_system_gauges_to_the_store() -> None:
    m = Metrics()
    m.set_system(3, 7, 2)
    started = ev.InstanceStarted(process_id="x", version=1, definition_hash="h", inputs={})
    m.on_events([(1, started), (2, ev.InstanceResumed(reason="retry"))])
    assert _value(m, "process_instances_active") == 3.0
    assert _value(m, "cadenza_task_queue_depth") == 7.0
    assert _value(m, "cadenza_agents_healthy") == 2.0
