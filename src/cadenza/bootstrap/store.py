"""The database: the schema brought up to date, the store over it and the workspace secrets
kept in it. The one place to add another kind of store (a URL scheme of its own)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cadenza.application.ports import Clock
from cadenza.application.secrets import WorkspaceSecrets
from cadenza.infrastructure.secrets_crypto import load_keyring
from cadenza.infrastructure.sql.database import (
    create_engine,
    normalize_url,
    prepare_sqlite_file,
    upgrade,
)
from cadenza.infrastructure.sql.secrets import SqlSecretStore
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings


async def upgrade_database(url: str) -> None:
    prepare_sqlite_file(url)
    await asyncio.to_thread(upgrade, url)


async def open_store(settings: Settings, *, migrate: bool = True) -> SqlStore:
    """The store on ``settings.database_url``, its schema upgraded first when ``migrate``."""
    if migrate:
        await upgrade_database(settings.database_url)
    prepare_sqlite_file(settings.database_url)
    return SqlStore(create_engine(normalize_url(settings.database_url)))


def workspace_secrets(settings: Settings, store: SqlStore, clock: Clock) -> WorkspaceSecrets:
    """Workspace secrets over the database and the configured key ring; on SQLite without a
    configured key, the key file lives next to the database file (generated when needed)."""
    url = settings.database_url
    path = url.partition(":///")[2].partition("?")[0] if url.startswith("sqlite") else ""
    default = Path(f"{path}.secrets.key") if path and path != ":memory:" else None
    ring = load_keyring(settings.secrets_key, settings.secrets_key_file, default)
    return WorkspaceSecrets(SqlSecretStore(store.engine), ring, clock)
