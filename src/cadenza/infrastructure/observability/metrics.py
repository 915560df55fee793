"""Prometheus metrics of the engine, the AI layer and the API, on a registry of their own.

Names keep the original design's (``task_executions_total``, ``agent_response_time_seconds``,
``process_instances_active``). Engine counters are counted from committed events (``on_events``,
an engine listener), so they say what happened, not what was attempted, in the process that
did it (sum them over processes). Gauges of the whole system (instances active, queue depth,
agents healthy) are counted in the store (``gauges.SystemGauges``, ``set_system``). See
docs/observability.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cadenza.application.availability import StoreStatus
from cadenza.domain import events as ev

log = logging.getLogger(__name__)
_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}
UNKNOWN = "unknown"  # node type of a task scheduled by another process
MAX_TRACKED_TASKS = 200_000  # (node type, start) of unfinished tasks; the oldest is forgotten
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
DEPENDENCIES = ("database", "bus")  # readiness checks exported as cadenza_dependency_up
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.breaker_state = Gauge(
            "cadenza_breaker_state",
            "Circuit state: 0 closed, 1 half-open, 2 open",
            ["name"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "cadenza_breaker_transitions_total", "Circuit state changes", ["name", "to"], registry=r
        )
        self.task_executions = Counter(
            "task_executions_total",
            "Finished task attempts by node type and status (completed, failed, retried)",
            ["node_type", "status"],
            registry=r,
        )
        self.task_duration = Histogram(
            "cadenza_task_duration_seconds",
            "From the start of a task's attempt (lease or schedule) to its completion or failure",
            ["node_type"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.instances_active = Gauge(
            "process_instances_active",
            "Instances running (all processes: counted in the store when scraped)",
            registry=r,
        )
        self.queue_depth = Gauge(
            "cadenza_task_queue_depth",
            "Tasks scheduled and waiting for a worker (all processes: counted in the store)",
            registry=r,
        )
        self.agents_healthy = Gauge(
            "cadenza_agents_healthy",
            "Registered agents whose last health check passed (all processes: from the store)",
            registry=r,
        )
        self.agents_by_capability = Gauge(
            "cadenza_agents_healthy_by_capability",
            "Healthy agents with each capability of the registered agents not draining (0: none "
            "healthy; all processes: from the store)",
            ["capability"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "cadenza_dependency_up",
            "1 when this process's last readiness check of the dependency (database, bus) "
            "passed, else 0; checked at each scrape",
            ["dependency"],
            registry=r,
        )
        self.lease_expiries = Counter(
            "cadenza_lease_expiries_total",
            "Task leases that expired and were re-queued (the worker was lost or stalled)",
            registry=r,
        )
        self.worker_deaths = Counter(
            "cadenza_task_worker_deaths_total",
            "Tasks re-queued because the worker process holding them died (found by a restart "
            "under the same worker id); task_max_crashes of them fail the attempt",
            registry=r,
        )
        self.store_errors = Counter(
            "cadenza_store_errors_total",
            "Engine operations that found the store unavailable (each retry counts)",
            registry=r,
        )
        self.engine_paused = Gauge(
            "cadenza_engine_paused",
            "1 while the store is unavailable and the engine takes no new work, else 0",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "cadenza_outbox_backlog",
            "Outbox rows not yet published to the bus (all processes; as of this relay's "
            "last poll or pass; 0 with the in-process bus)",
            registry=r,
        )
        self.outbox_published = Counter(
            "cadenza_outbox_published_total",
            "Committed events this process's relay published to the bus (a republish after "
            "a crash counts again)",
            registry=r,
        )
        self.llm_tokens = Counter(
            "cadenza_llm_tokens_total", "Model tokens", ["provider", "model", "kind"], registry=r
        )
        self.llm_cost = Counter(
            "cadenza_llm_cost_total", "Model cost", ["provider", "model"], registry=r
        )
        self.agent_response = Histogram(
            "agent_response_time_seconds",
            "Model call latency per provider",
            ["agent"],
            buckets=AGENT_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration (to the end of the response body) by method and route",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        # labelled children, cached: ``labels()`` costs a lock and a tuple per call
        self._executions: dict[tuple[str, str], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._request_durations: dict[tuple[str, str], Histogram] = {}
        self._tasks: dict[str, tuple[str, float]] = {}  # task id -> (node type, attempt start)
        self._pending: dict[tuple[str, str], int] = {}  # executions counted in this commit
        self._capabilities: set[str] = set()

    # ---- listeners ---------------------------------------------------------------------------
    def on_breaker_change(self, name: str, old: object, new: object) -> None:
        """Every circuit state change is a log event and a metric."""
        state = str(getattr(new, "value", new))
        log.warning("circuit %s: %s -> %s", name, getattr(old, "value", old), state)
        self.breaker_state.labels(name).set(_BREAKER_VALUE.get(state, -1.0))
        self.breaker_transitions.labels(name, state).inc()

    def on_events(self, events: list[tuple[int, ev.Event]]) -> None:
        """Engine listener: counts from committed events."""
        self._pending = {}
        for _, e in events:
            handler = _HANDLERS.get(type(e))
            if handler is not None:
                handler(self, e)
        pending, self._pending = self._pending, {}
        for key, n in pending.items():  # one increment per (node type, status) and commit
            counter = self._executions.get(key)
            if counter is None:
                counter = self._executions[key] = self.task_executions.labels(*key)
            counter.inc(n)

    def on_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One finished HTTP request (``route`` is the template, e.g. ``/instances/{id}``)."""
        key = (method, route, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.http_requests.labels(method, route, str(status))
        counter.inc()
        hkey = (method, route)
        histogram = self._request_durations.get(hkey)
        if histogram is None:
            histogram = self._request_durations[hkey] = self.http_duration.labels(method, route)
        histogram.observe(seconds)

    def on_store_status(self, status: StoreStatus) -> None:
        """Engine listener: each failure to reach the store, and the paused state."""
        if not status.available:
            self.store_errors.inc()
        self.engine_paused.set(0.0 if status.available else 1.0)

    def on_relay_pass(self, published: int, backlog: int) -> None:
        """The outbox relay's report after each pass (``application/relay.py``)."""
        self.outbox_published.inc(published)
        self.outbox_backlog.set(backlog)

    def set_queue_depth(self, tasks: int) -> None:
        self.queue_depth.set(tasks)

    def on_task_started(self, task_id: str, node_type: str) -> None:
        """Worker hook: this process runs the task, so its finish counts under its node type
        even when another process scheduled it (that process saw ``TaskScheduled``)."""
        if task_id not in self._tasks and len(self._tasks) >= MAX_TRACKED_TASKS:
            del self._tasks[next(iter(self._tasks))]
        self._tasks[task_id] = (node_type, self._tasks.get(task_id, (UNKNOWN, 0.0))[1])

    def on_task_types(self, types: dict[str, str]) -> None:
        """Engine hook, before a commit's events: the node types of the tasks they end, known
        to the committing engine even when this process never saw them scheduled or run."""
        for task_id, node_type in types.items():
            started = self._tasks.get(task_id, (UNKNOWN, 0.0))[1]
            if task_id not in self._tasks and len(self._tasks) >= MAX_TRACKED_TASKS:
                del self._tasks[next(iter(self._tasks))]
            self._tasks[task_id] = (node_type, started)

    def set_system(self, instances_running: int, tasks_queued: int, agents_healthy: int) -> None:
        """The system-wide gauges, as counted in the store (``gauges.SystemGauges``)."""
        self.instances_active.set(instances_running)
        self.queue_depth.set(tasks_queued)
        self.agents_healthy.set(agents_healthy)

    def set_capabilities(self, healthy: Mapping[str, int]) -> None:
        """Healthy agents per capability (``gauges.capability_counts``); a capability no agent
        has any more loses its series."""
        for gone in self._capabilities - healthy.keys():
            self.agents_by_capability.remove(gone)
        for capability, n in healthy.items():
            self.agents_by_capability.labels(capability).set(n)
        self._capabilities = set(healthy)

    def on_readiness(self, checks: Mapping[str, str]) -> None:
        """A readiness report's checks (``"ok"`` or why not): the dependencies' up gauges."""
        for dependency in DEPENDENCIES:
            if dependency in checks:
                self.dependency_up.labels(dependency).set(float(checks[dependency] == "ok"))

    # ---- event handlers ----------------------------------------------------------------------
    def _scheduled(self, e: ev.TaskScheduled | ev.TaskWaiting) -> None:
        if e.task_id not in self._tasks and len(self._tasks) >= MAX_TRACKED_TASKS:
            del self._tasks[next(iter(self._tasks))]
        self._tasks[e.task_id] = (e.node_type, e.occurred_at)

    def _restarted(self, e: ev.TaskLeased | ev.TaskRequeued | ev.TaskReset) -> None:
        node_type = self._tasks.get(e.task_id, (UNKNOWN, 0.0))[0]
        self._tasks[e.task_id] = (node_type, e.occurred_at)
        if isinstance(e, ev.TaskRequeued) and e.charged:  # not a release by a stop or restart
            self.lease_expiries.inc()
        elif isinstance(e, ev.TaskRequeued) and e.crashed:
            self.worker_deaths.inc()

    def _finished(self, e: ev.TaskCompleted | ev.TaskFailed) -> None:
        node_type, started = self._tasks.get(e.task_id, (UNKNOWN, 0.0))
        if isinstance(e, ev.TaskFailed):  # kept: a retry of the task counts its node type
            self._tasks[e.task_id] = (node_type, 0.0)
        else:
            self._tasks.pop(e.task_id, None)
        status = "completed" if isinstance(e, ev.TaskCompleted) else "failed"
        self._count(node_type, status)
        if started:
            histogram = self._durations.get(node_type)
            if histogram is None:
                histogram = self._durations[node_type] = self.task_duration.labels(node_type)
            histogram.observe(max(0.0, e.occurred_at - started))
        if isinstance(e, ev.TaskCompleted):
            self._usage(e.usage)

    def _retried(self, e: ev.TaskRetryScheduled) -> None:
        self._count(self._tasks.get(e.task_id, (UNKNOWN, 0.0))[0], "retried")

    def _dropped(self, e: ev.TaskCancelled | ev.TaskSkipped) -> None:
        self._tasks.pop(e.task_id, None)

    def _count(self, node_type: str, status: str) -> None:
        key = (node_type, status)
        self._pending[key] = self._pending.get(key, 0) + 1

    def _usage(self, usage: Mapping[str, object]) -> None:
        provider, model = str(usage.get("provider", "")), str(usage.get("model", ""))
        if not provider:
            return
        if usage.get("scope") == "workspace":  # a workspace's own provider: /metrics is shared
            provider, model = "workspace", "workspace"
        for kind in ("prompt_tokens", "completion_tokens"):
            value = usage.get(kind)
            if isinstance(value, int | float):
                self.llm_tokens.labels(provider, model, kind.split("_")[0]).inc(value)
        cost, latency = usage.get("cost"), usage.get("latency_s")
        if isinstance(cost, int | float) and cost > 0:
            self.llm_cost.labels(provider, model).inc(cost)
        if isinstance(latency, int | float):
            self.agent_response.labels(provider).observe(latency)


# by exact type: one dict lookup per event on the commit path
_HANDLERS: dict[type[ev.Event], Callable[[Metrics, Any], None]] = {
    ev.TaskScheduled: Metrics._scheduled,
    ev.TaskWaiting: Metrics._scheduled,
    ev.TaskLeased: Metrics._restarted,
    ev.TaskRequeued: Metrics._restarted,
    ev.TaskReset: Metrics._restarted,
    ev.TaskCompleted: Metrics._finished,
    ev.TaskFailed: Metrics._finished,
    ev.TaskRetryScheduled: Metrics._retried,
    ev.TaskCancelled: Metrics._dropped,
    ev.TaskSkipped: Metrics._dropped,
}
