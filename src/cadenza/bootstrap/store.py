"""The database: the schema brought up to date, the store over it and the workspace secrets
kept in it. The one place to add another kind of store (a URL scheme of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from cadenza.application import outage_log
from cadenza.application.agent_definitions import AgentRepository
from cadenza.application.config_model import ConfigStore
from cadenza.application.payload_blobs import BlobStage
from cadenza.application.payload_reseal import PayloadRotation
from cadenza.application.payloads import PayloadCodec, PayloadStage
from cadenza.application.ports import Clock
from cadenza.application.ports_approvals import ToolApprovals
from cadenza.application.ports_assignments import AssignmentStore
from cadenza.application.ports_blobs import BlobStore
from cadenza.application.ports_leases import LeaderLeases
from cadenza.application.ports_quotas import QuotaStore
from cadenza.application.secrets import Cipher, SecretStore, WorkspaceSecrets
from cadenza.domain.agent import AgentStatus
from cadenza.infrastructure.agents_memory import MemoryAgentRepository
from cadenza.infrastructure.assignments_memory import MemoryAssignments
from cadenza.infrastructure.blobs.files import FileBlobStore
from cadenza.infrastructure.config_memory import MemoryConfigStore
from cadenza.infrastructure.leases_memory import MemoryLeaderLeases
from cadenza.infrastructure.memory_store import MEMORY_URL, MemoryStore
from cadenza.infrastructure.observability.gauges import CountSource, SystemCounts, capability_counts
from cadenza.infrastructure.quotas_memory import MemoryQuotaStore
from cadenza.infrastructure.secrets_crypto import KeyRing, load_keyring
from cadenza.infrastructure.secrets_memory import MemorySecretStore
from cadenza.infrastructure.sql.agents import SqlAgentRepository
from cadenza.infrastructure.sql.approvals import SqlToolApprovals
from cadenza.infrastructure.sql.assignments import SqlAssignments
from cadenza.infrastructure.sql.counts import sql_counts
from cadenza.infrastructure.sql.database import (
    create_engine,
    normalize_url,
    prepare_sqlite_file,
    sqlite_path,
    upgrade,
)
from cadenza.infrastructure.sql.faults import unavailable
from cadenza.infrastructure.sql.leaders import SqlLeaderLeases
from cadenza.infrastructure.sql.payload_reseal import SqlPayloadRows
from cadenza.infrastructure.sql.queries import SqlQueries
from cadenza.infrastructure.sql.quotas import SqlQuotaStore
from cadenza.infrastructure.sql.runtime_config import SqlConfigStore
from cadenza.infrastructure.sql.secrets import SqlSecretStore
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings


async def upgrade_database(url: str) -> None:
    if url == MEMORY_URL:
        return  # nothing to migrate: the in-memory store has no schema
    prepare_sqlite_file(url)
    await asyncio.to_thread(upgrade, url)


async def open_store(
    settings: Settings, clock: Clock, *, migrate: bool = True
) -> tuple[SqlStore | MemoryStore, AgentRepository, SecretStore]:
    """The store and the repositories beside it. ``memory://`` keeps them all in this process
    (tests, demos; nothing is durable); any other URL is a SQL database, migrated first when
    ``migrate``."""
    if settings.database_url == MEMORY_URL:
        return MemoryStore(), MemoryAgentRepository(), MemorySecretStore()
    if migrate:
        await upgrade_database(settings.database_url)
    prepare_sqlite_file(settings.database_url)
    blobs = open_blobs(settings)
    codec = payload_codec(settings, blobs)
    store = SqlStore(create_engine(normalize_url(settings.database_url)), codec, blobs)
    # the repositories beside the store raise the driver's errors: these are outages
    outage_log.recognise(unavailable)
    return store, SqlAgentRepository(store.engine, clock), SqlSecretStore(store.engine)


def open_blobs(settings: Settings) -> BlobStore | None:
    """The blob store of offloaded payloads: ``blob_url`` (``file:///dir`` or
    ``s3://bucket/prefix``), else ``blob_dir``, else ``<database file>.blobs`` next to a
    SQLite database; None (no offload) for a server database with neither set."""
    url = settings.blob_url.strip()
    if url.startswith("s3://"):
        from cadenza.infrastructure.blobs.s3 import S3BlobStore  # boto3: only when configured

        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"CADENZA_BLOB_URL {url!r}: expected s3://bucket/prefix")
        return S3BlobStore(
            bucket,
            prefix,
            endpoint_url=settings.blob_endpoint or None,
            region=settings.blob_region or None,
        )
    if url.startswith("file://"):
        return FileBlobStore(url[len("file://") :])
    if url:
        raise ValueError(f"CADENZA_BLOB_URL {url!r}: expected file:///path or s3://bucket/prefix")
    if settings.blob_dir:
        return FileBlobStore(settings.blob_dir)
    db_file = sqlite_path(settings.database_url)
    return FileBlobStore(f"{db_file}.blobs") if db_file is not None else None


def payload_codec(settings: Settings, blobs: BlobStore | None) -> PayloadCodec:
    """The stages every stored payload goes through (docs/payloads.md), in encode order.
    A stage that must see the real value (redaction, sealing) goes before the blob stage:
    ``codec.with_stage(stage, first=True)``."""
    stages: list[PayloadStage] = []
    if blobs is not None and settings.payload_offload_bytes > 0:
        stages.append(BlobStage(blobs, settings.payload_offload_bytes))
    return PayloadCodec(stages)


def payload_rotation(store: SqlStore | MemoryStore, cipher: Cipher) -> PayloadRotation | None:
    """Key rotation of the sealed PII originals in the store's payload rows and blobs (None
    for ``memory://``: nothing is sealed there)."""
    if isinstance(store, MemoryStore):
        return None
    blobs = next((s for s in store.codec.stages if isinstance(s, BlobStage)), None)
    if blobs is None and store.blobs is not None:  # offload off now: older blobs still count
        blobs = BlobStage(store.blobs)
    return PayloadRotation(SqlPayloadRows(store.engine), cipher, blobs)


def keyring(settings: Settings) -> KeyRing:
    """The deployment's key ring (workspace secrets, sealed PII originals); on SQLite without
    a configured key, the key file lives next to the database file (generated when needed)."""
    url = settings.database_url
    path = url.partition(":///")[2].partition("?")[0] if url.startswith("sqlite") else ""
    default = Path(f"{path}.secrets.key") if path and path != ":memory:" else None
    return load_keyring(settings.secrets_key, settings.secrets_key_file, default)


def workspace_secrets(
    settings: Settings, store: SecretStore, clock: Clock, ring: KeyRing | None = None
) -> WorkspaceSecrets:
    """Workspace secrets over the database and the key ring (``keyring``)."""
    return WorkspaceSecrets(store, ring or keyring(settings), clock)


def config_store(store: SqlStore | MemoryStore) -> ConfigStore:
    """Runtime configuration rows in the store's database (in this process for ``memory://``:
    call once per process)."""
    return MemoryConfigStore() if isinstance(store, MemoryStore) else SqlConfigStore(store.engine)


def leader_leases(store: SqlStore | MemoryStore) -> LeaderLeases:
    """In the store's database (``leaders`` table), or in this process for ``memory://``."""
    if isinstance(store, MemoryStore):
        return MemoryLeaderLeases()
    return SqlLeaderLeases(store.engine)


def store_ping(store: SqlStore | MemoryStore) -> Callable[[], Awaitable[None]]:
    """A read of the database (readiness); the in-memory store takes its writer's turn."""
    if isinstance(store, MemoryStore):
        return store.probe
    return SqlQueries(store.engine).ping


def assignment_store(store: SqlStore | MemoryStore) -> AssignmentStore:
    """External-worker assignments beside the store: in its database, shared by every process
    on it (in this process's memory for ``memory://``)."""
    return MemoryAssignments() if isinstance(store, MemoryStore) else SqlAssignments(store.engine)


def approval_store(store: SqlStore | MemoryStore) -> ToolApprovals | None:
    """Approved MCP tool definitions in the database (None for ``memory://``: per process)."""
    return None if isinstance(store, MemoryStore) else SqlToolApprovals(store.engine)


def system_counts(store: SqlStore | MemoryStore, agents: AgentRepository) -> CountSource:
    """What the system-wide gauges count: the store's rows (in this process for ``memory://``)."""
    if not isinstance(store, MemoryStore):
        return sql_counts(store.engine)

    async def counts() -> SystemCounts:
        registered = await agents.list()
        healthy = sum(a.status is AgentStatus.HEALTHY for a in registered)
        running = len(await store.unfinished_instances())
        capabilities = capability_counts((a.status.value, a.capabilities) for a in registered)
        return SystemCounts(running, await store.queue_depth(), healthy, capabilities)

    return counts


def quota_store(store: SqlStore | MemoryStore) -> QuotaStore:
    """Workspace quotas and their counters in the store's database, shared by every process
    on it (in this process's memory for ``memory://``)."""
    if not isinstance(store, MemoryStore):
        return SqlQuotaStore(store.engine)
    memory = store

    async def running(workspace_id: str) -> int:
        rows = await memory.list_instances(limit=1 << 30, status="running")
        return sum(r.workspace_id == workspace_id for r in rows)

    return MemoryQuotaStore(running)
