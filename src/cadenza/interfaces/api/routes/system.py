"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from cadenza.application.identity import Permission
from cadenza.interfaces.api.guard import Caller, Svc

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/health/readiness")
async def readiness(svc: Svc) -> JSONResponse:
    """Readiness: the database and the event bus are reachable (503 otherwise)."""
    checks = await svc.readiness()
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", response_class=Response)
async def metrics(p: Caller, svc: Svc) -> Response:
    """Prometheus metrics (text exposition format). Scrape with a viewer API key."""
    p.require(Permission.READ)
    if svc.metrics_refresh is not None:
        await svc.metrics_refresh()
    return Response(svc.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")
