"""Sealed secrets on a real SQLite database: the key ring, key files, rotation, and binding of
each ciphertext to its workspace and name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from cadenza.application.secrets import SecretsUnavailable, WorkspaceSecrets
from cadenza.entrypoints.cli import app
from cadenza.infrastructure.secrets_crypto import (
    KeyRing,
    key_id,
    load_keyring,
    new_key,
    parse_keys,
)
from cadenza.infrastructure.sql.database import create_engine, normalize_url, upgrade
from cadenza.infrastructure.sql.secrets import SqlSecretStore
from cadenza.infrastructure.sql.tables import workspace_secrets

OLD, NEW = new_key(), new_key()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        self.t += 1
        return self.t


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database on each backend (SQLite, PostgreSQL)."""
    await asyncio.to_thread(upgrade, database_url)
    e = create_engine(normalize_url(database_url))
    try:
        yield e
    finally:
        await e.dispose()


def vault(engine: AsyncEngine, *keys: str) -> WorkspaceSecrets:
    ring = KeyRing([k for key in keys for k in parse_keys(key, "test")])
    return WorkspaceSecrets(SqlSecretStore(engine), ring, Clock())


async def key_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(workspace_secrets.c.key_id))
        return {r.key_id for r in rows}


async def test_rotation_reseals_every_secret_under_the_first_key(engine: AsyncEngine) -> None:
    before = vault(engine, OLD)
    await before.put("a", "TOKEN", "value-a", "user:1")
    await before.put("a", "OTHER", "value-a2", "user:1")
    await before.put("b", "TOKEN", "value-b", "user:2")
    both = vault(engine, f"{NEW},{OLD}")  # the new key first, the old one still there
    assert await both.reveal("a", ["TOKEN"]) == {"TOKEN": "value-a"}
    assert await both.rotate() == 3
    assert await both.rotate() == 0
    [new_id] = parse_keys(NEW, "test")
    assert await key_ids(engine) == {key_id(new_id)}
    after = vault(engine, NEW)  # the old key dropped
    assert await after.reveal("a", ["TOKEN", "OTHER"]) == {"TOKEN": "value-a", "OTHER": "value-a2"}
    assert await after.reveal("b", ["TOKEN"]) == {"TOKEN": "value-b"}
    with pytest.raises(SecretsUnavailable, match="is not in the key ring"):
        await vault(engine, OLD).reveal("a", ["TOKEN"])


async def test_a_ciphertext_moved_to_another_workspace_does_not_open(engine: AsyncEngine) -> None:
    v = vault(engine, OLD)
    await v.put("a", "TOKEN", "value-a", "user:1")
    await v.put("b", "TOKEN", "value-b", "user:2")
    c = workspace_secrets.c
    async with engine.begin() as conn:
        sealed_a = (
            await conn.execute(sa.select(c.sealed).where(c.workspace_id == "a"))
        ).scalar_one()
        await conn.execute(
            workspace_secrets.update().where(c.workspace_id == "b").values(sealed=sealed_a)
        )
    with pytest.raises(SecretsUnavailable, match="does not open"):
        await v.reveal("b", ["TOKEN"])


async def test_a_key_file_is_generated_next_to_the_database_on_first_use(
    url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "vault.db.secrets.key"
    engine = create_engine(normalize_url(url))
    first = WorkspaceSecrets(SqlSecretStore(engine), load_keyring("", "", key_file), Clock())
    assert await first.list("a") == []
    assert not key_file.exists()  # nothing sealed yet: no key made
    await first.put("a", "TOKEN", "value-a", "user:1")
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = WorkspaceSecrets(SqlSecretStore(engine), load_keyring("", "", key_file), Clock())
    assert await again.reveal("a", ["TOKEN"]) == {"TOKEN": "value-a"}
    await engine.dispose()


def test_keys_come_from_the_environment_first_then_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# current first\n{NEW}\n{OLD}\n")
    from_file = load_keyring("", str(key_file), None)
    from_env = load_keyring(OLD, str(key_file), None)
    [new], [old] = parse_keys(NEW, "t"), parse_keys(OLD, "t")
    assert from_file.current_key_id() == key_id(new)
    assert from_env.current_key_id() == key_id(old)
    with pytest.raises(SecretsUnavailable, match="CADENZA_SECRETS_KEY"):
        load_keyring("", "", None).current_key_id()
    with pytest.raises(ValueError, match="32 bytes in URL-safe base64"):
        load_keyring("too-short", "", None)


def test_the_rotate_command_reseals_with_the_new_key(url: str) -> None:
    async def seed() -> None:
        e = create_engine(normalize_url(url))
        await vault(e, OLD).put("default", "TOKEN", "value", "cli")
        await e.dispose()

    asyncio.run(seed())
    env = {"CADENZA_SECRETS_KEY": f"{NEW},{OLD}"}
    result = CliRunner().invoke(app, ["secrets", "rotate", "--database-url", url], env=env)
    assert result.exit_code == 0, result.output
    assert "re-sealed 1 secret(s)" in result.output

    async def check() -> dict[str, str]:
        e = create_engine(normalize_url(url))
        try:
            return await vault(e, NEW).reveal("default", ["TOKEN"])
        finally:
            await e.dispose()

    assert asyncio.run(check()) == {"TOKEN": "value"}
