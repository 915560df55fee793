"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cadenza.application.identity import Permission
from cadenza.interfaces.api.guard import Svc, principal
from cadenza.interfaces.ops_http import METRICS_TYPE, bearer_matches

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/health/readiness")
async def readiness(svc: Svc) -> JSONResponse:
    """Readiness: the database and the event bus are reachable, the engine runs (503
    otherwise); says the process's role."""
    report = await svc.readiness()
    return JSONResponse(report.body(), status_code=200 if report.ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, svc: Svc) -> Response:
    """Prometheus metrics (text exposition format). Scrape with the metrics token
    (``CADENZA_METRICS_TOKEN``, as on every role's ops port) or a viewer API key."""
    if not bearer_matches(request.headers.get("authorization"), svc.metrics_token):
        (await principal(request)).require(Permission.READ)
    if svc.metrics_refresh is not None:
        await svc.metrics_refresh()
    return Response(svc.metrics_text(), media_type=METRICS_TYPE)


# authenticates inside the handler (the metrics token, else a principal): see guard.check_coverage
metrics.authenticates = True  # type: ignore[attr-defined]
