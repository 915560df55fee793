"""What ``cadenza serve`` builds: logging, the runtime (with or without its worker), the
definitions published at start and the HTTP server over the app (``api.build_app``).

The command itself (options, the first admin's password prompt, messages, the event loop) is
``cadenza.entrypoints.cli_serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import uvicorn
from fastapi import FastAPI

from cadenza.application.ports import StoredDefinition
from cadenza.application.readiness import ServiceRole
from cadenza.bootstrap.lifecycle import Runtime
from cadenza.bootstrap.runtime import build, tune_gc
from cadenza.bootstrap.stop_on_term import uvicorn_server
from cadenza.infrastructure.documents import read_document
from cadenza.infrastructure.observability.logging import configure_logging
from cadenza.settings import Settings


async def open_runtime(settings: Settings, *, role: str) -> Runtime:
    """Logging configured, then the runtime of ``role`` ("all" or "api": no worker, no
    agent duties)."""
    configure_logging(json=settings.log_json)
    return await build(settings, role=ServiceRole(role))


async def publish_file(runtime: Runtime, file: Path) -> StoredDefinition:
    """Publish a definition file into the default workspace (same content: same version)."""
    return await runtime.definitions.publish(read_document(file))


class ProxyOptions(TypedDict):
    proxy_headers: bool
    forwarded_allow_ips: list[str]


def proxy_options(settings: Settings) -> ProxyOptions:
    """uvicorn's proxy options from ``settings.trusted_proxies`` (for every server of the app,
    the tests' included). Its ``ProxyHeadersMiddleware`` takes the client from
    ``X-Forwarded-For`` (the last address in it that is not a trusted proxy) and the scheme
    from ``X-Forwarded-Proto`` only when the TCP peer is trusted; nothing trusted: it is off
    and the client is the TCP peer, whatever the headers say."""
    trusted = list(settings.trusted_proxies)
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def http_server(settings: Settings, app: FastAPI) -> uvicorn.Server:
    """The server of ``app`` on ``settings.host:port``; the heap built so far is frozen first
    (``tune_gc``), as everything the server needs is built by now."""
    tune_gc()
    return uvicorn_server(
        app, settings.host, settings.port, settings.shutdown_grace_s, **proxy_options(settings)
    )
