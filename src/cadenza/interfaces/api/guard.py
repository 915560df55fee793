"""Authentication for every route but the checked-in public list, and per-caller limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, APIWebSocketRoute

from cadenza.application.identity import AuthError, Principal
from cadenza.interfaces.api.problems import RateLimited
from cadenza.interfaces.api.services import ApiServices

# The only routes that answer without credentials. A test enumerates the app's routes and
# checks that every other one refuses a request without valid credentials.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/health"),
        ("GET", "/health/readiness"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/openapi.json"),
        ("GET", "/"),  # the web console's files: no data, it signs in through the API
        ("GET", "/{path:path}"),
    }
)
# Browsers cannot set headers on EventSource and WebSocket: these take ?access_token=.
TOKEN_IN_QUERY: frozenset[str] = frozenset(
    {
        "/api/v1/events/stream",
        "/api/v1/execution/tasks/stream",
        "/api/v1/events/ws",
        "/graphql",
    }
)


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found


def credentials(request: Request) -> tuple[str | None, str | None]:
    """(credential, workspace) from headers, or the query for streaming routes."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    credential: str | None = value.strip() if scheme.lower() == "bearer" else None
    credential = credential or request.headers.get("x-api-key")
    workspace = request.headers.get("x-workspace")
    if request.url.path in TOKEN_IN_QUERY:
        credential = credential or request.query_params.get("access_token")
        workspace = workspace or request.query_params.get("workspace")
    return credential or None, workspace or None


async def resolve(svc: ApiServices, credential: str | None, workspace: str | None) -> Principal:
    if not credential:
        raise AuthError("missing credentials: send 'Authorization: Bearer <token or API key>'")
    principal = await svc.identity.authenticate(credential, workspace)
    wait = await svc.limiter.hit("api", principal.subject)
    if wait is not None:
        raise RateLimited(wait)
    return principal


async def principal(request: Request) -> Principal:
    credential, workspace = credentials(request)
    found = await resolve(services(request), credential, workspace)
    request.state.principal = found
    return found


async def limit_by_ip(request: Request) -> None:
    """For the public login/refresh routes: attempts per client address."""
    ip = request.client.host if request.client else "unknown"
    wait = await services(request).limiter.hit("login", ip)
    if wait is not None:
        raise RateLimited(wait)


Caller = Annotated[Principal, Depends(principal)]
Svc = Annotated[ApiServices, Depends(services)]


def check_coverage(app: FastAPI) -> None:
    """Fail at start-up when a route is neither public nor authenticated."""
    for route in app.routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            methods = getattr(route, "methods", None) or {"WEBSOCKET"}
            public = all((m, route.path) in PUBLIC_ROUTES for m in methods)
            guarded = any(
                d.call is principal for d in route.dependant.dependencies
            ) or _guards_itself(route)
            if not public and not guarded:
                raise RuntimeError(f"route {route.path} is neither public nor authenticated")


def _guards_itself(route: APIRoute | APIWebSocketRoute) -> bool:
    """WebSocket routes authenticate inside the handler (before accepting)."""
    return bool(getattr(route.endpoint, "authenticates", False))
