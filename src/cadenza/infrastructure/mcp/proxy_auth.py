"""Who may use the MCP proxy: every request but the probes carries the service token that
workers present (``Authorization: Bearer <mcp_proxy_token>``, compared in constant time);
``/metrics`` takes the ``metrics_token`` instead."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/health", "/health/readiness"})
MIN_TOKEN_CHARS = 32


@dataclass(frozen=True)
class ProxyConfig:
    token: str
    metrics_token: str = ""
    max_body_bytes: int = 1_048_576


def check_tokens(config: ProxyConfig) -> None:
    """Raise ValueError unless the service token is set and long enough (and the metrics
    token, when set)."""
    if len(config.token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"mcp_proxy_token (CADENZA_MCP_PROXY_TOKEN) must be set to at least "
            f"{MIN_TOKEN_CHARS} characters: workers present it to the proxy"
        )
    if config.metrics_token and len(config.metrics_token) < MIN_TOKEN_CHARS:
        raise ValueError(f"metrics_token must be at least {MIN_TOKEN_CHARS} characters")


def bearer_matches(headers: Headers, token: str) -> bool:
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credential.strip().encode(), token.encode()
    )


def unauthorized() -> Response:
    return JSONResponse(
        {"detail": "missing or wrong bearer token"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


class RequireToken:
    """ASGI middleware: every HTTP request but the probes and /metrics shows the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        guarded = scope["type"] == "http" and path not in PUBLIC_PATHS and path != "/metrics"
        if guarded and not bearer_matches(Headers(scope=scope), self._token):
            await unauthorized()(scope, receive, send)
            return
        await self._app(scope, receive, send)
