"""``cadenza_quota_refusals_total{kind}``: starts and model turns refused by a workspace quota
(kind: running | starts | tokens | cost). Not labelled by workspace: the number of workspaces
is not bounded; ``GET /api/v1/workspaces/{id}/usage`` shows one workspace's usage."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

QUOTA_KINDS = ("running", "starts", "tokens", "cost")


def quota_refusals(registry: CollectorRegistry) -> Callable[[str], None]:
    """Register the counter (every kind at 0, so a rate query sees the series) and return
    what counts one refusal."""
    counter = Counter(
        "cadenza_quota_refusals_total",
        "Starts and model turns refused by a workspace quota, by kind",
        ["kind"],
        registry=registry,
    )
    for kind in QUOTA_KINDS:
        counter.labels(kind=kind)

    def count(kind: str) -> None:
        counter.labels(kind=kind).inc()

    return count
