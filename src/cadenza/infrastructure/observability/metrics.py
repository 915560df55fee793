"""Prometheus metrics of the engine and the AI layer, on a registry of their own.

Names keep the original design's (``task_executions_total``, ``agent_response_time_seconds``,
``process_instances_active``); the ``/metrics`` route comes with the API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cadenza.domain import events as ev

log = logging.getLogger(__name__)
_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}


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
            "task_executions_total", "Finished task attempts", ["status"], registry=r
        )
        self.instances_active = Gauge(
            "process_instances_active",
            "Instances started and not finished (this process)",
            registry=r,
        )
        self.llm_tokens = Counter(
            "cadenza_llm_tokens_total", "Model tokens", ["provider", "model", "kind"], registry=r
        )
        self.llm_cost = Counter(
            "cadenza_llm_cost_total", "Model cost", ["provider", "model"], registry=r
        )
        self.agent_response = Histogram(
            "agent_response_time_seconds", "Model call latency per provider", ["agent"], registry=r
        )

    def on_breaker_change(self, name: str, old: object, new: object) -> None:
        """Every circuit state change is a log event and a metric."""
        state = str(getattr(new, "value", new))
        log.warning("circuit %s: %s -> %s", name, getattr(old, "value", old), state)
        self.breaker_state.labels(name).set(_BREAKER_VALUE.get(state, -1.0))
        self.breaker_transitions.labels(name, state).inc()

    def on_events(self, events: list[tuple[int, ev.Event]]) -> None:
        """Engine listener: counts from committed events."""
        for _, e in events:
            if isinstance(e, ev.InstanceStarted):
                self.instances_active.inc()
            elif isinstance(e, ev.InstanceCompleted | ev.InstanceFailed | ev.InstanceCancelled):
                self.instances_active.dec()
            elif isinstance(e, ev.TaskCompleted):
                self.task_executions.labels("completed").inc()
                self._usage(e.usage)
            elif isinstance(e, ev.TaskFailed):
                self.task_executions.labels("failed").inc()
            elif isinstance(e, ev.TaskRetryScheduled):
                self.task_executions.labels("retried").inc()

    def _usage(self, usage: Mapping[str, object]) -> None:
        provider, model = str(usage.get("provider", "")), str(usage.get("model", ""))
        if not provider:
            return
        for kind in ("prompt_tokens", "completion_tokens"):
            value = usage.get(kind)
            if isinstance(value, int | float):
                self.llm_tokens.labels(provider, model, kind.split("_")[0]).inc(value)
        cost, latency = usage.get("cost"), usage.get("latency_s")
        if isinstance(cost, int | float) and cost > 0:
            self.llm_cost.labels(provider, model).inc(cost)
        if isinstance(latency, int | float):
            self.agent_response.labels(provider).observe(latency)
