"""``create_app``: the FastAPI application, built from services (a factory, never global)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from cadenza.interfaces.api import docs, problems
from cadenza.interfaces.api.guard import check_coverage
from cadenza.interfaces.api.headers import SecurityHeaders
from cadenza.interfaces.api.middleware import BodyTooLarge, GatewayMiddleware
from cadenza.interfaces.api.routes import (
    admin,
    agents,
    audit,
    auth,
    catalog,
    definitions,
    instances,
    integrations,
    live,
    metrics,
    quotas,
    redaction,
    retention,
    secrets,
    system,
    workers,
    workspaces,
)
from cadenza.interfaces.api.routes import config as config_routes
from cadenza.interfaces.api.services import ApiConfig, ApiServices

API_VERSION = "1"


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # outermost, outside Starlette's error middleware: even the 500 page gets the headers
        return SecurityHeaders(super().build_middleware_stack())


def create_app(services: ApiServices, config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for start in services.on_startup:
            await start()
        try:
            yield
        finally:
            for stop in services.on_shutdown:
                await stop()

    app = _App(
        title="Cadenza",
        version=API_VERSION,
        description="Durable AI workflows: definitions, instances, tasks, agents, live events.",
        lifespan=lifespan,
        docs_url=None,  # docs.install: Swagger UI from this server, not a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # the API has no OAuth2 flow to redirect
    )
    app.state.services = services
    app.state.config = config
    problems.install(app)

    async def on_too_large(_: Request, exc: Exception) -> JSONResponse:
        return problems.problem(413, str(exc))

    app.add_exception_handler(BodyTooLarge, on_too_large)
    # live before instances: /execution/tasks/stream must match before /execution/tasks/{id}
    for module in (
        system,
        auth,
        catalog,
        definitions,
        live,
        instances,
        metrics,
        agents,
        workers,
        integrations,
        admin,
        secrets,
        quotas,
        audit,
        retention,
        workspaces,
        config_routes,
        redaction,
    ):
        app.include_router(module.router, responses=problems.ERROR_RESPONSES)
    for mount in services.extra_mounts:
        mount(app)
    docs.install(app, config.static_dir)  # before _static's catch-all
    _static(app, config)
    check_coverage(app)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["*"],
            allow_headers=["authorization", "content-type", "x-workspace", "last-event-id"],
        )
    app.add_middleware(
        GatewayMiddleware,
        allowed_hosts=config.allowed_hosts,
        allowed_origins=config.cors_origins,
        max_body_bytes=config.max_body_bytes,
    )
    return app


def _static(app: FastAPI, config: ApiConfig) -> None:
    """The built web console at ``/``; unknown non-API paths get ``index.html`` (SPA)."""
    root = config.static_dir
    if root is None or not (root / "index.html").is_file():
        return
    base = root.resolve()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(base / "index.html")

    @app.get("/{path:path}", include_in_schema=False)
    async def asset(path: str) -> FileResponse:
        if path.startswith(("api/", "graphql", "mcp")):
            from fastapi import HTTPException

            raise HTTPException(404, f"no route for /{path}")
        target = (base / path).resolve()
        if target.is_file() and target.is_relative_to(base):
            return FileResponse(target)
        return FileResponse(base / "index.html")
