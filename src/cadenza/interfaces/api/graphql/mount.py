"""The GraphQL endpoint at ``/graphql``: the schema, its limits, and the authenticated router.

GraphiQL is off (an IDE page would answer before authentication); use any GraphQL client
with an ``Authorization`` header. Queries may use GET or POST; mutations POST only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

from cross_web import HTTPException
from fastapi import FastAPI
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UnsetType

from cadenza.application.identity import AuthError, Forbidden, Permission, Principal
from cadenza.interfaces.api.graphql.context import GraphQLContext, http_context, socket_credentials
from cadenza.interfaces.api.graphql.cost import CostLimit
from cadenza.interfaces.api.graphql.errors import ErrorCodes, Schema
from cadenza.interfaces.api.graphql.mutation import Mutation
from cadenza.interfaces.api.graphql.query import Query
from cadenza.interfaces.api.graphql.subscription import Subscription
from cadenza.interfaces.api.guard import resolve
from cadenza.interfaces.api.problems import RateLimited
from cadenza.interfaces.api.recheck import until_revoked

PATH = "/graphql"
MAX_DEPTH = 6  # e.g. instances → items → tasks → detail is 4
MAX_ALIASES = 15
MAX_TOKENS = 2000
MAX_SUBSCRIPTIONS = 20  # per WebSocket connection
MAX_JSON_DEPTH = 100  # nesting of a request's JSON (variables included)
INIT_TIMEOUT = timedelta(seconds=10)  # a socket must send connection_init within this
_Close = Callable[[int, str], Awaitable[None]]


def _depth(value: object, most: int) -> int:
    """How deep ``value`` nests (a scalar 0, ``{}`` 1), level by level without recursion;
    stops counting past ``most``."""
    depth, level = 0, [value]
    while depth <= most:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        depth += 1
        level = [x for c in containers for x in (c.values() if isinstance(c, dict) else c)]
    return depth


def build_schema() -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            CostLimit,
            ErrorCodes,
        ],
    )


class _TooDeep(json.JSONDecodeError):
    """A JSON document nested past ``MAX_JSON_DEPTH`` (a JSONDecodeError, so a socket that
    sends one is closed like one that sends invalid JSON)."""


async def _watched(
    context: GraphQLContext, handle: Callable[[], Awaitable[None]], close: _Close
) -> None:
    """Run a socket's handler while re-checking its principal; when the principal loses
    access, later operations are refused and the socket closes (4403) with the reason."""

    async def watch() -> None:
        while context.principal is None:  # until connection_init authenticates
            await asyncio.sleep(context.services.stream_recheck_s)
        p = context.principal

        def updated(current: Principal) -> None:
            context.principal = current

        reason = await until_revoked(context.services, p, updated)
        context.principal = None
        await close(4403, f"access revoked: {reason}"[:120])

    watcher = asyncio.create_task(watch())
    try:
        await handle()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


class _TransportWS(BaseGraphQLTransportWSHandler[GraphQLContext, None]):
    async def handle(self) -> None:
        await _watched(self.context, super().handle, self.websocket.close)


class _LegacyWS(BaseGraphQLWSHandler[GraphQLContext, None]):
    async def handle(self) -> None:
        await _watched(self.context, super().handle, self.websocket.close)


class _Router(GraphQLRouter[GraphQLContext, None]):
    graphql_transport_ws_handler_class = _TransportWS
    graphql_ws_handler_class = _LegacyWS

    def decode_json(self, data: str | bytes) -> object:
        """JSON of a request body or a socket message, refused when nested deeper than
        ``MAX_JSON_DEPTH`` (Python's decoder would raise RecursionError near 1,000 levels,
        which used to be a 500): a 400 over HTTP, close 4400 on a socket."""
        try:
            found = json.loads(data)
        except RecursionError:
            found = None
        else:
            if _depth(found, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH:
                return found
        doc = data if isinstance(data, str) else data.decode("utf-8", "replace")
        raise _TooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", doc[:80], 0)

    def parse_json(self, data: str | bytes) -> object:
        try:
            return self.decode_json(data)
        except _TooDeep as exc:
            raise HTTPException(400, exc.msg) from exc
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"the request is not valid JSON: {exc.msg}") from exc

    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        """Authenticate the socket on ``connection_init``; a refusal closes it (4403 on
        graphql-transport-ws, ``connection_error`` on graphql-ws) before any operation."""
        socket = context.request
        assert isinstance(socket, WebSocket)
        credential, workspace = socket_credentials(context.connection_params, socket)
        try:
            principal = await resolve(context.services, credential, workspace)
            principal.require(Permission.READ)
        except (AuthError, Forbidden, RateLimited) as exc:
            raise ConnectionRejectionError({"message": str(exc)}) from exc
        context.principal = principal
        return {"workspace": principal.workspace_id, "role": principal.role.value}


def mount_graphql(app: FastAPI) -> None:
    """Serve GraphQL (HTTP and WebSocket) at ``/graphql`` with the API's authentication."""
    router = _Router(
        build_schema(),
        path=PATH,
        graphql_ide=None,
        context_getter=http_context,
        connection_init_wait_timeout=INIT_TIMEOUT,
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS,
        allowed_origins=list(app.state.config.cors_origins),
    )
    for route in router.routes:
        # every route authenticates: HTTP in its context dependency (``guard.principal``),
        # the WebSocket in ``on_ws_connect`` before any operation may run
        route.endpoint.authenticates = True  # type: ignore[attr-defined]
    app.include_router(router, include_in_schema=False)
