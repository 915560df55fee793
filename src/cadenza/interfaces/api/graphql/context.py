"""Who is asking: the per-request (or per-socket) context and its authentication.

HTTP requests authenticate exactly like REST (``guard.principal``: the ``Authorization`` or
``X-API-Key`` header, ``X-Workspace``, or ``?access_token=``), before any GraphQL is parsed,
so a bad credential is a 401/403 response. A WebSocket authenticates on ``connection_init``
(its payload, else the handshake's header or query); until then no operation runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import strawberry
from starlette.requests import HTTPConnection, Request
from strawberry.fastapi import BaseContext

from cadenza.application.identity import AuthError, Principal
from cadenza.interfaces.api import guard
from cadenza.interfaces.api.services import ApiServices


class GraphQLContext(BaseContext):
    """What every resolver gets: the API's services and the authenticated caller."""

    def __init__(self, services: ApiServices, principal: Principal | None) -> None:
        super().__init__()
        self.services = services
        self.principal = principal

    @property
    def caller(self) -> Principal:
        if self.principal is None:  # a socket that has not completed connection_init
            raise AuthError("not authenticated")
        return self.principal


Info = strawberry.Info[GraphQLContext, None]


async def http_context(connection: HTTPConnection) -> GraphQLContext:
    """The context dependency of the GraphQL routes: HTTP callers are authenticated here
    (raising AuthError → 401 before the endpoint runs); sockets in ``on_ws_connect``."""
    services: ApiServices = connection.app.state.services
    if isinstance(connection, Request):
        return GraphQLContext(services, await guard.principal(connection))
    return GraphQLContext(services, None)


def _bearer(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None
    return None


def _text(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def socket_credentials(
    params: Mapping[str, object] | None, connection: HTTPConnection
) -> tuple[str | None, str | None]:
    """(credential, workspace) from the ``connection_init`` payload, falling back to the
    handshake's ``Authorization`` header or ``?access_token=`` (browsers cannot set headers)."""
    p = {str(k).lower(): v for k, v in (params or {}).items()}
    credential = _bearer(p.get("authorization")) or _text(p.get("x-api-key"))
    workspace = _text(p.get("x-workspace")) or _text(p.get("workspace"))
    from_handshake = guard.credentials(connection)  # /graphql takes ?access_token= too
    return credential or from_handshake[0], workspace or from_handshake[1]
