"""Authentication for every route but the checked-in public list, and per-caller limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

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
        ("GET", "/docs/{asset}"),  # Swagger UI's files, same origin
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


def credentials(request: HTTPConnection) -> tuple[str | None, str | None]:
    """(credential, workspace) from headers, or the query for streaming routes (HTTP requests
    and WebSocket handshakes alike)."""
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
    """Fail at start-up when a route is neither public nor authenticated. Routes are read
    through FastAPI's route contexts, so routers, plain Starlette routes and mounts count."""
    for ctx in iter_route_contexts(app.routes):
        route, path = ctx.original_route, str(ctx.path)
        if isinstance(route, Mount):
            raise RuntimeError(f"mount {path} cannot be checked; use routes that authenticate")
        if isinstance(route, APIRoute | APIWebSocketRoute):
            guarded = any(d.call is principal for d in route.dependant.dependencies)
        elif isinstance(route, Route | WebSocketRoute):
            guarded = False
        else:
            raise RuntimeError(f"route {path} is of an unknown kind: {route!r}")
        methods = set(ctx.methods or ()) or {"WEBSOCKET"}
        public = all((m, path) in PUBLIC_ROUTES or m == "HEAD" for m in methods)
        if not (public or guarded or _guards_itself(route)):
            raise RuntimeError(f"route {path} is neither public nor authenticated")


def _guards_itself(route: BaseRoute) -> bool:
    """WebSocket routes and protocol endpoints (GraphQL, MCP) authenticate inside the
    handler, before doing anything; they say so with ``endpoint.authenticates = True``."""
    return bool(getattr(getattr(route, "endpoint", None), "authenticates", False))
