"""Composition of the API process: identity, queries, the event hub and the FastAPI app."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import generate_latest
from sqlalchemy.exc import DBAPIError

from cadenza.application.feed import EventHub
from cadenza.application.identity import Identity
from cadenza.application.payload_reads import PayloadReads
from cadenza.application.processes import Processes
from cadenza.application.readiness import Readiness
from cadenza.application.workspace_deletion import WorkspaceDeletion
from cadenza.bootstrap.audit import build_auditor
from cadenza.bootstrap.lifecycle import Runtime
from cadenza.bootstrap.roles import check_metrics_token
from cadenza.bootstrap.runtime import SystemClock
from cadenza.infrastructure.ids import IdSource
from cadenza.infrastructure.keyfile import KEY_FILE_NAME, ensure_key_file, read_key_file
from cadenza.infrastructure.observability.series import SeriesSampler
from cadenza.infrastructure.ratelimit import build_limiter
from cadenza.infrastructure.security import JwtCodec, ScryptHasher
from cadenza.infrastructure.sql.database import sqlite_path
from cadenza.infrastructure.sql.faults import unavailable
from cadenza.infrastructure.sql.identity import SqlIdentityStore
from cadenza.infrastructure.sql.queries import SqlQueries
from cadenza.interfaces.api import ApiConfig, ApiServices, create_app, observe
from cadenza.interfaces.api.graphql import mount_graphql
from cadenza.interfaces.api.problems import install_store_faults
from cadenza.interfaces.mcp_server import mount_mcp
from cadenza.settings import Settings

_SHOWN_SETTINGS = (
    "host",
    "port",
    "capacity",
    "lease_s",
    "default_provider",
    "agent_health_interval_s",
    "approve_destructive_tools",
    "allowed_hosts",
    "cors_origins",
    "max_body_bytes",
    "rate_limit",
    "login_rate_limit",
    "shutdown_grace_s",
    "stream_recheck_s",
)


def static_dir() -> Path | None:
    built = Path(__file__).parents[1] / "web" / "dist"
    return built if (built / "index.html").is_file() else None


def token_secret(settings: Settings) -> str:
    """The JWT signing key: ``token_secret``, else ``token_secret_file``, else (SQLite) a key
    file made once beside the database; an in-memory database gets a key for this process.
    ValueError for other databases: every API process must share one key, so it is set."""
    if settings.token_secret:
        return settings.token_secret
    if settings.token_secret_file:
        return read_key_file(Path(settings.token_secret_file))
    db_file = sqlite_path(settings.database_url)
    if db_file is not None:
        return ensure_key_file(db_file.parent / KEY_FILE_NAME)
    if settings.database_url.startswith("sqlite"):
        return secrets.token_urlsafe(48)
    raise ValueError(
        "set CADENZA_TOKEN_SECRET or CADENZA_TOKEN_SECRET_FILE (at least 32 characters): "
        "every API process of this database must sign tokens with the same key"
    )


async def build_identity(runtime: Runtime) -> Identity:
    settings = runtime.settings
    return Identity(
        SqlIdentityStore(runtime.database()),
        ScryptHasher(n=settings.password_hash_n),
        JwtCodec(token_secret(settings)),
        SystemClock(),
        IdSource(),
        access_ttl_s=settings.access_token_ttl_s,
        refresh_ttl_s=settings.refresh_token_ttl_s,
        refresh_grace_s=settings.refresh_grace_s,
    )


def workspace_deletion(runtime: Runtime, identity: Identity) -> WorkspaceDeletion | None:
    """The API's use case over the job's store; a request wakes this process's job."""
    parts = runtime.retention
    if parts is None:
        return None
    job = parts.deletion.job
    return WorkspaceDeletion(parts.deletion.store, identity.store, SystemClock(), job.wake)


async def build_app(runtime: Runtime, identity: Identity) -> FastAPI:
    """The app over a built (not yet started) runtime; its lifespan starts and closes it."""
    settings = runtime.settings
    check_metrics_token(settings)
    queries = SqlQueries(runtime.database(), runtime.payload_codec())
    clock = SystemClock()
    bus = runtime.bus
    remote = bus is not None and not bus.local  # woken by the bus: the poll is a fallback
    group = f"feed:{runtime.engine.settings.holder}"  # one group per process: every message
    poll_s = settings.feed_bus_poll_s if remote else 1.0
    hub = EventHub(
        queries, clock, poll_s=poll_s, gap_wait_s=settings.feed_gap_wait_s, bus=bus, group=group
    )
    runtime.engine.subscribe(hub.notify)
    tracing = runtime.tracing
    if tracing is not None:  # instances a worker finishes end the spans opened here
        hub.subscribe(lambda entries: tracing.ended_elsewhere(e.event for e in entries))

    async def readiness() -> Readiness:
        return await runtime.readiness()

    async def start() -> None:
        await runtime.start()
        await hub.start()

    async def stop() -> None:
        await hub.stop()
        await runtime.close(settings.shutdown_grace_s)

    auditor = build_auditor(runtime)
    services = ApiServices(
        processes=Processes(
            runtime.definitions, queries, runtime.engine, clock, runtime.quotas, auditor
        ),
        identity=identity,
        hub=hub,
        agents=runtime.agents,
        external=runtime.external,
        providers=runtime.providers,
        gateway=runtime.gateway,
        metrics_text=lambda: generate_latest(runtime.metrics.registry),
        metrics_token=settings.metrics_token,
        metrics_refresh=runtime.refresh_metrics,
        readiness=readiness,
        secrets=runtime.secrets,
        audit=auditor,
        retention=None if runtime.retention is None else runtime.retention.service,
        workspace_deletion=workspace_deletion(runtime, identity),
        redaction=None if runtime.redaction is None else runtime.redaction.service,
        payloads=PayloadReads(queries, runtime.payload_codec(), runtime.blob_store()),
        config=runtime.config,
        on_startup=[start],
        on_shutdown=[stop],
        stream_recheck_s=settings.stream_recheck_s,
    )
    # ---- mounts and extras (GraphQL, MCP server, observability): one line each ----
    # services.extra_mounts.append(...)
    services.extra_mounts.append(lambda app: observe.install(app, runtime.metrics.on_request))
    sampler = SeriesSampler(runtime.metrics, runtime.gauges.queue_depth)
    services.metrics_series = sampler.series
    services.on_startup.append(sampler.start)
    services.on_shutdown.insert(0, sampler.stop)
    services.limiter = limiter = build_limiter(settings)  # memory, or Redis if redis_url
    services.on_shutdown.append(limiter.close)
    services.extra_mounts.append(
        lambda app: install_store_faults(app, (DBAPIError, ConnectionError), unavailable)
    )
    services.extra_mounts.append(mount_graphql)
    services.extra_mounts.append(mount_mcp)

    config = ApiConfig(
        allowed_hosts=list(settings.allowed_hosts),
        cors_origins=list(settings.cors_origins),
        max_body_bytes=settings.max_body_bytes,
        static_dir=static_dir(),
        settings_view={k: getattr(settings, k) for k in _SHOWN_SETTINGS},
    )
    return create_app(services, config)
