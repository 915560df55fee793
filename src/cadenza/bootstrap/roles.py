"""The service processes that are not the API: ``cadenza worker`` (the engine) and ``cadenza
agents`` (the agent-management service), each with its ops port (``interfaces.ops_http``).

No web framework is imported here: see ``cadenza.entrypoints.cli``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import generate_latest
from sqlalchemy.engine import make_url

from cadenza.application.readiness import ServiceRole
from cadenza.bootstrap.lifecycle import Runtime
from cadenza.bootstrap.runtime import build, tune_gc
from cadenza.infrastructure.observability.logging import configure_logging
from cadenza.interfaces.ops_http import OpsServer, serve_ops
from cadenza.settings import Settings

MIN_METRICS_TOKEN_CHARS = 32


def check_metrics_token(settings: Settings) -> None:
    """ValueError when a metrics token is set but short (the value is never shown)."""
    token = settings.metrics_token
    if token and len(token) < MIN_METRICS_TOKEN_CHARS:
        raise ValueError(
            f"CADENZA_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_CHARS} characters "
            f"(it has {len(token)})"
        )


async def open_ops(runtime: Runtime, host: str, port: int) -> OpsServer:
    """The ops port of ``runtime``'s process: its readiness, its metrics."""
    settings = runtime.settings
    check_metrics_token(settings)
    registry = runtime.metrics.registry
    return await serve_ops(
        host,
        port,
        runtime.readiness,
        lambda: generate_latest(registry),
        settings.metrics_token,
        runtime.refresh_metrics,
    )


@dataclass(frozen=True)
class OpsAddress:
    host: str
    port: int | None  # None: no ops port; 0: any free one (announced)


async def run_role(
    settings: Settings,
    role: ServiceRole,
    ops: OpsAddress,
    announce: Callable[[str], None],
) -> None:
    """Build, start and serve a process of ``role`` until SIGINT or SIGTERM, then stop it
    gracefully (running tasks get ``shutdown_grace_s``; a held lease is released)."""
    check_metrics_token(settings)
    configure_logging(json=settings.log_json)  # as `cadenza serve`: JSON lines for the shipper
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before startup: a stop then is graceful
        loop.add_signal_handler(sig, stop.set)
    runtime = await build(settings, role=role)
    tune_gc()
    server: OpsServer | None = None
    try:
        if ops.port is not None:
            server = await open_ops(runtime, ops.host, ops.port)
            announce(f"ops port http://{ops.host}:{server.port} (/health, /metrics)")
        await runtime.start()
        # the URL without its password: this line goes to the logs (and a log shipper)
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        announce(f"{role} {runtime.leadership.holder} running on {shown}")
        await stop.wait()
    finally:
        if server is not None:
            await server.close()
        await runtime.close(settings.shutdown_grace_s)
