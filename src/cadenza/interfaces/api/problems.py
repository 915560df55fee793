"""Errors as ``application/problem+json`` (RFC 9457): a title, the status, what went wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from cadenza.application.accounts import IdentityInvalid
from cadenza.application.agent_definitions import AgentConflict, AgentError, AgentNotFound
from cadenza.application.definitions import InputsInvalid
from cadenza.application.identity import AuthError, Forbidden
from cadenza.application.ports import StoreUnavailable
from cadenza.application.ports_api import DefinitionConflict, IdentityConflict
from cadenza.application.quotas import QuotaExceeded, retry_after
from cadenza.domain.errors import Conflict, DefinitionInvalid, NotFound

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
STORE_RETRY_AFTER_S = 5  # Retry-After of a 503 while the database is away (the engine's backoff)

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


class ProblemOut(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="each problem with its JSON `path` and a `message`"
    )


PROBLEM_SCHEMA = "ProblemDetails"  # ProblemOut in the OpenAPI components


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, as ``application/problem+json``.

    Each refers to one ``#/components/schemas/ProblemDetails`` (added by ``install``) instead of
    inlining the schema in every operation."""
    schema = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}
    return {
        s: {"description": _TITLES[s], "content": {MEDIA_TYPE: {"schema": schema}}}
        for s in statuses
    }


# What any route may answer: Host refused (400), credentials (401), role or workspace (403),
# unknown id (404), state (409), body size and type (413, 415), validation (422), rate (429).
ERROR_RESPONSES = documented(400, 401, 403, 404, 409, 413, 415, 422, 429)


class RateLimited(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else "body"


_SIMPLE: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (AgentNotFound, 404),
    (Forbidden, 403),
    (AgentConflict, 409),  # before AgentError, its base
    (Conflict, 409),
    (DefinitionConflict, 409),
    (IdentityConflict, 409),
    (IdentityInvalid, 422),
    (AgentError, 422),
]


def _with_problem_schema(app: FastAPI) -> None:
    """Register ProblemOut as the ``ProblemDetails`` component the error responses refer to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            if PROBLEM_SCHEMA in components:  # a model of that name would be overwritten
                raise RuntimeError(f"schema name {PROBLEM_SCHEMA!r} is taken")
            components[PROBLEM_SCHEMA] = ProblemOut.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _with_problem_schema(app)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"path": _loc(e.get("loc", ())), "message": str(e["msg"])} for e in exc.errors()]
        summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
        return problem(422, f"the request is invalid: {summary}", errors=errors)

    async def on_definition(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DefinitionInvalid)
        errors = [{"path": p.path, "message": p.message} for p in exc.problems]
        return problem(
            422,
            f"definition is invalid ({len(errors)} problem(s))",
            errors=errors,
            title="Invalid definition",
        )

    async def on_inputs(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InputsInvalid)
        errors = [{"path": f"inputs{p}", "message": m} for p, m in exc.problems]
        return problem(422, str(exc), errors=errors, title="Invalid inputs")

    async def on_auth(_: Request, exc: Exception) -> JSONResponse:
        return problem(401, str(exc), headers={"WWW-Authenticate": "Bearer"})

    async def on_limit(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimited)
        wait = max(1, round(exc.retry_after_s + 0.5))
        return problem(429, str(exc), headers={"Retry-After": str(wait)})

    async def on_quota(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QuotaExceeded)  # 429; Retry-After when waiting helps
        wait = exc.retry_after_s
        headers = None if wait is None else {"Retry-After": str(retry_after(wait))}
        return problem(429, str(exc), headers=headers, title="Quota exceeded")

    def simple(status: int) -> Any:
        async def handler(_: Request, exc: Exception) -> JSONResponse:
            return problem(status, str(exc))

        return handler

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(DefinitionInvalid, on_definition)
    app.add_exception_handler(InputsInvalid, on_inputs)
    app.add_exception_handler(AuthError, on_auth)
    app.add_exception_handler(RateLimited, on_limit)
    app.add_exception_handler(QuotaExceeded, on_quota)
    app.add_exception_handler(StoreUnavailable, _on_unavailable)
    for cls, status in _SIMPLE:
        app.add_exception_handler(cls, simple(status))
    app.add_exception_handler(Exception, _on_unexpected)


def install_store_faults(
    app: FastAPI,
    kinds: tuple[type[Exception], ...],
    classify: Callable[[BaseException], StoreUnavailable | None],
) -> None:
    """Answer 503 for the database errors ``classify`` calls an outage (the composition root
    knows the driver's exception types; this layer does not), 500 for the others."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        down = classify(exc)
        if down is None:
            return await _on_unexpected(request, exc)
        log.debug("database unavailable on %s %s: %s", request.method, request.url.path, down)
        return await _on_unavailable(request, down)

    for kind in kinds:
        app.add_exception_handler(kind, handler)


async def _on_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # the reason (a host, a file) is for the logs, not for callers
    detail = (
        "the database is unavailable; try again shortly (an instance start retried with "
        "the same Idempotency-Key starts at most one instance)"
    )
    return problem(503, detail, headers={"Retry-After": str(STORE_RETRY_AFTER_S)})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request.headers.get("x-request-id", "")
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, f"an unexpected error occurred (request id {rid or 'unknown'})")
