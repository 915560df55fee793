"""Security regressions of issue 9 at rest: the SQLite database is private to its owner
(directory 0700, files 0600), the token signing key lives outside it, and password hashes
use OWASP's scrypt cost, old hashes re-made at the next sign-in."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cadenza.application.identity import Identity
from cadenza.bootstrap import SystemClock, build, build_identity, token_secret
from cadenza.infrastructure.ids import IdSource
from cadenza.infrastructure.keyfile import KEY_FILE_NAME, read_key_file
from cadenza.infrastructure.security import JwtCodec, ScryptHasher
from cadenza.infrastructure.sql.database import MIGRATIONS, create_engine, normalize_url
from cadenza.infrastructure.sql.identity import SqlIdentityStore
from cadenza.infrastructure.sql.tables import server_secrets
from cadenza.settings import Settings

PASSWORD = "a-long-enough-password"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_is_private_to_its_owner(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "data" / "cadenza.db"
    runtime = await build(Settings(database_url=f"sqlite:///{db}"), run_worker=False)
    try:
        identity = await build_identity(runtime)
        await identity.ensure_first_admin(PASSWORD)  # writes: the WAL and its index exist
        wal, shm = db.with_name("cadenza.db-wal"), db.with_name("cadenza.db-shm")
        assert (mode(db.parent), mode(db), mode(wal), mode(shm)) == (0o700, 0o600, 0o600, 0o600)
        assert mode(db.parent / KEY_FILE_NAME) == 0o600
    finally:
        await runtime.close()


async def test_an_existing_directory_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    runtime = await build(Settings(database_url=f"sqlite:///{shared / 'c.db'}"), run_worker=False)
    await runtime.close()
    assert (mode(shared), mode(shared / "c.db")) == (0o750, 0o600)


async def test_the_signing_key_is_a_file_beside_the_database_not_in_it(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    settings = Settings(database_url=f"sqlite:///{db}")
    runtime = await build(settings, run_worker=False)
    try:
        identity = await build_identity(runtime)
        await identity.ensure_first_admin(PASSWORD)
        await identity.login("admin", PASSWORD)
        key = read_key_file(tmp_path / KEY_FILE_NAME)
        assert token_secret(settings) == key  # made once, then read
        async with runtime.database().connect() as conn:
            assert (await conn.execute(sa.select(server_secrets))).all() == []
    finally:
        await runtime.close()
    for part in tmp_path.glob("c.db*"):
        assert key.encode() not in part.read_bytes()


def test_the_signing_key_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    given = "k" * 40
    assert token_secret(Settings(token_secret=given, database_url="postgresql://h/db")) == given
    file = tmp_path / "key"
    file.write_text(given + "\n")
    file.chmod(0o600)
    assert token_secret(Settings(token_secret_file=str(file))) == given
    file.write_text("short")
    with pytest.raises(ValueError, match="at least 32 characters"):
        token_secret(Settings(token_secret_file=str(file)))


def test_a_shared_database_without_a_configured_key_is_refused() -> None:
    with pytest.raises(ValueError, match="CADENZA_TOKEN_SECRET"):
        token_secret(Settings(database_url="postgresql://db.example/cadenza"))


async def test_upgrading_forgets_the_signing_secret_kept_in_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url))
    await asyncio.to_thread(command.upgrade, cfg, "0004")
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(server_secrets.insert().values(name="jwt", value="s" * 64))
    await asyncio.to_thread(command.upgrade, cfg, "head")
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(server_secrets))).all() == []
    await engine.dispose()


async def test_new_hashes_use_owasps_minimum_scrypt_cost() -> None:
    hasher = ScryptHasher()
    hashed = await hasher.hash(PASSWORD)
    assert hashed.startswith("scrypt$131072$8$1$")
    assert await hasher.verify(PASSWORD, hashed)
    assert not await hasher.verify(PASSWORD + "!", hashed)
    assert not hasher.needs_rehash(hashed)


async def test_hashes_asking_for_too_much_memory_are_refused_not_computed() -> None:
    hashed = await ScryptHasher(n=2**10).hash(PASSWORD)
    salt, digest = hashed.split("$")[4:]
    greedy = f"scrypt${2**20}$16$1${salt}${digest}"  # 2 GiB
    assert not await ScryptHasher(n=2**10).verify(PASSWORD, greedy)


async def test_an_old_hash_is_remade_at_the_next_sign_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    runtime = await build(Settings(database_url=url), run_worker=False)
    store = SqlIdentityStore(runtime.database())

    def identity(n: int) -> Identity:
        return Identity(store, ScryptHasher(n=n), JwtCodec("j" * 40), SystemClock(), IdSource())

    try:
        old = await identity(2**10).create_user("ada", PASSWORD)
        assert old.password_hash.startswith("scrypt$1024$")
        await identity(2**11).login("ada", PASSWORD)
        user = await store.user(old.id)
        assert user is not None
        assert user.password_hash.startswith("scrypt$2048$8$1$")
        await identity(2**11).login("ada", PASSWORD)  # and it verifies
    finally:
        await runtime.close()
