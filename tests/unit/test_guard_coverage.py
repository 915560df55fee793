"""``check_coverage`` refuses an app with a route that is neither public nor authenticated,
wherever the route comes from (a router, a plain Starlette route, a mount)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from cadenza.interfaces.api.guard import Caller, check_coverage


async def _plain(_: object) -> PlainTextResponse:
    return PlainTextResponse("hi")


def _router_app(guarded: bool) -> FastAPI:
    router = APIRouter(prefix="/api/v1")
    if guarded:

        @router.get("/thing")
        async def thing(p: Caller) -> str:
            return p.workspace_id

    else:

        @router.get("/thing")
        async def open_thing() -> str:
            return "open"

    app = FastAPI(docs_url=None, redoc_url=None)
    app.include_router(router)
    return app


def test_a_router_route_without_auth_is_refused() -> None:
    with pytest.raises(RuntimeError, match="/api/v1/thing is neither public nor authenticated"):
        check_coverage(_router_app(guarded=False))
    check_coverage(_router_app(guarded=True))


def test_plain_routes_must_declare_that_they_authenticate() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.router.routes.append(Route("/raw", _plain))
    with pytest.raises(RuntimeError, match="/raw"):
        check_coverage(app)

    async def guarded(_: object) -> PlainTextResponse:
        return PlainTextResponse("checked inside")

    guarded.authenticates = True  # type: ignore[attr-defined]
    ok = FastAPI(docs_url=None, redoc_url=None)
    ok.router.routes.append(Route("/raw", guarded))
    check_coverage(ok)


def test_mounts_are_refused() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    app.router.routes.append(Mount("/sub", routes=[Route("/x", _plain)]))
    with pytest.raises(RuntimeError, match="mount /sub"):
        check_coverage(app)
