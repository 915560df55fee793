"""Dashboard time series of the Prometheus metrics (the console's monitoring charts)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cadenza.application.identity import Permission
from cadenza.interfaces.api.guard import Caller, Svc

router = APIRouter(prefix="/api/v1/metrics", tags=["system"])


class SeriesOut(BaseModel):
    interval_s: float
    window_s: float
    t: list[float]  # sample times, seconds since the epoch, oldest first
    series: dict[str, list[float | None]]  # one value per sample; null where there was no data


@router.get("/series")
async def series(p: Caller, svc: Svc) -> SeriesOut:
    """The last hour sampled every 5 s: ``instances_active``, ``queue_depth``, ``task_rate``
    (finished attempts per second), ``task_latency_p50``/``_p95`` and ``agent_response_p50``
    (seconds, interpolated from the histogram buckets)."""
    p.require(Permission.READ)
    if svc.metrics_series is None:
        return SeriesOut(interval_s=0, window_s=0, t=[], series={})
    return SeriesOut.model_validate(svc.metrics_series())
