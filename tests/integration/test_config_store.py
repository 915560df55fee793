"""Runtime configuration over each backend (SQLite, PostgreSQL, MariaDB, memory): the store
contract (revisions, scopes, delete), credentials sealed in the row and bound to it, and the
applier's reloads (a change, a deletion, the periodic fallback)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.config_apply import ConfigApplier
from cadenza.application.config_model import (
    MCP_SERVER,
    PROVIDER,
    SHARED,
    ConfigRow,
    ConfigStore,
    Environment,
    McpSpec,
    ProviderSpec,
)
from cadenza.application.ports_ai import ModelProvider
from cadenza.application.providers import ProviderInfo, Providers
from cadenza.application.runtime_config import RuntimeConfig
from cadenza.application.secrets import SecretsUnavailable
from cadenza.infrastructure.config_memory import MemoryConfigStore
from cadenza.infrastructure.llm.offline import OfflineProvider
from cadenza.infrastructure.secrets_crypto import KeyRing, new_key, parse_keys
from cadenza.infrastructure.sql.database import create_engine, normalize_url, upgrade
from cadenza.infrastructure.sql.runtime_config import SqlConfigStore
from cadenza.infrastructure.sql.tables import runtime_config

KEY = "sk-store-Key-0001"
TOKEN = "header-token-0002"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        self.t += 1
        return self.t


class Accepting:
    """A validator that accepts everything (the API tests use the real one)."""

    async def provider(self, spec: ProviderSpec) -> str | None:
        return None

    async def mcp_server(self, spec: McpSpec) -> str | None:
        return None

    async def url(self, url: str) -> str | None:
        return None

    def setting(self, name: str, value: object) -> tuple[object, str | None]:
        return value, None


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ConfigStore]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(normalize_url(database_url))
    try:
        yield SqlConfigStore(engine)
    finally:
        await engine.dispose()


def ring(*keys: str) -> KeyRing:
    return KeyRing([k for key in keys for k in parse_keys(key, "test")])


async def _noop(workspace_id: str, kind: str, name: str) -> None:
    return None


def service(store: ConfigStore, keys: KeyRing, env: Environment | None = None) -> RuntimeConfig:
    return RuntimeConfig(store, keys, Clock(), env or Environment(), Accepting(), _noop)


def row(workspace_id: str, name: str, kind: str = PROVIDER) -> ConfigRow:
    return ConfigRow(workspace_id, kind, name, {"kind": "offline"}, None, None, 0, 1.0, "test")


async def test_store_contract(store: ConfigStore) -> None:
    await check_contract(store)


async def test_memory_store_contract() -> None:
    await check_contract(MemoryConfigStore())


async def check_contract(store: ConfigStore) -> None:
    first = await store.put(row("ws-a", "p"))
    assert first.revision == 1
    again = await store.put(replace(row("ws-a", "p"), body={"kind": "openai"}, updated_at=2.0))
    assert (again.revision, again.body) == (2, {"kind": "openai"})
    await store.put(row(SHARED, "p"))
    await store.put(row("ws-b", "m", MCP_SERVER))
    keys = [(r.workspace_id, r.kind, r.name) for r in await store.rows()]
    assert keys == [(SHARED, PROVIDER, "p"), ("ws-a", PROVIDER, "p"), ("ws-b", MCP_SERVER, "m")]
    assert [r.name for r in await store.rows(MCP_SERVER)] == ["m"]
    stored = await store.row("ws-a", PROVIDER, "p")
    assert stored is not None
    assert (stored.revision, stored.updated_at, stored.sealed) == (2, 2.0, None)
    assert await store.delete("ws-a", PROVIDER, "p")
    assert not await store.delete("ws-a", PROVIDER, "p")
    assert await store.row("ws-a", PROVIDER, "p") is None
    assert await store.row(SHARED, PROVIDER, "p") is not None


async def test_credentials_are_sealed_and_bound_to_their_row(store: ConfigStore) -> None:
    await check_sealed(store)


async def test_memory_credentials_are_sealed() -> None:
    await check_sealed(MemoryConfigStore())


async def check_sealed(store: ConfigStore) -> None:
    keys = ring(new_key())
    config = service(store, keys)
    spec = ProviderSpec("p", "openai", "https://api.example.com/v1", api_key=KEY)
    await config.save(await config.prepare_provider("ws-a", spec, "test"))
    mcp = McpSpec("m", url="https://mcp.example.com/mcp", headers={"Authorization": TOKEN})
    await config.save(await config.prepare_mcp("ws-a", mcp, "test"))
    for stored in await store.rows():
        assert stored.sealed is not None
        assert KEY.encode() not in stored.sealed
        assert TOKEN.encode() not in stored.sealed
        assert KEY not in str(stored.body)
        assert TOKEN not in str(stored.body)
    resolved = {r.name: r for r in await config.resolved()}
    assert resolved["p"].provider is not None
    assert resolved["p"].provider.api_key == KEY
    assert resolved["m"].mcp is not None
    assert resolved["m"].mcp.headers == {"Authorization": TOKEN}
    # a ciphertext moved to another workspace does not open there
    moved = replace((await store.rows(PROVIDER))[0], workspace_id="ws-b")
    await store.put(moved)
    with pytest.raises(SecretsUnavailable):  # keeping its key means opening it: refused
        await config.prepare_provider("ws-b", replace(spec, api_key=None), "test")
    # ... and a process applying the configuration leaves it out, keeping the others
    applied = {(r.workspace_id, r.name) for r in await config.resolved()}
    assert applied == {("ws-a", "p"), ("ws-a", "m")}


async def test_sql_rows_hold_no_credential_in_clear(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    engine: AsyncEngine = create_engine(normalize_url(database_url))
    try:
        config = service(SqlConfigStore(engine), ring(new_key()))
        spec = ProviderSpec("p", "anthropic", api_key=KEY)
        await config.save(await config.prepare_provider(SHARED, spec, "test"))
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(runtime_config))).all()
    finally:
        await engine.dispose()
    text = repr(
        [
            tuple(bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else v for v in r)
            for r in rows
        ]
    )
    assert "anthropic" in text
    assert KEY not in text


class Built:
    """Counts the clients built by the applier."""

    def __init__(self) -> None:
        self.specs: list[tuple[str, str]] = []

    def __call__(self, spec: ProviderSpec, scope: str) -> tuple[ModelProvider, ProviderInfo]:
        self.specs.append((scope, spec.default_model))
        if spec.default_model == "refused":
            raise ValueError("URL refused")  # as spec_client does for a refused URL
        return OfflineProvider(spec.name), ProviderInfo(spec.kind)


async def test_applier_applies_changes_deletions_and_refreshes_on_its_own() -> None:
    store = MemoryConfigStore()
    config = service(store, ring(new_key()))
    providers = Providers({"offline": OfflineProvider("offline")}, "offline", grace_s=0.0)
    built = Built()
    applier = ConfigApplier(
        config.resolved, providers, built, None, {"default_provider": "offline"}, 0.05
    )
    await config.save(
        await config.prepare_provider("ws-a", ProviderSpec("p", "offline", default_model="m1"), "t")
    )
    await applier.reload()
    assert providers.resolve("p", None, "ws-a")[1] == "m1"
    await applier.reload()  # nothing changed: nothing rebuilt
    assert built.specs == [("ws-a", "m1")]
    # a change this process is never told about is picked up by the periodic refresh
    await store.put(
        replace(
            (await store.rows())[0],
            body={"kind": "offline", "default_model": "m2"},
            updated_at=5000.0,
        )
    )
    applier.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while built.specs[-1] != ("ws-a", "m2"):
            assert asyncio.get_running_loop().time() < deadline, built.specs
            await asyncio.sleep(0.01)
        assert providers.resolve("p", None, "ws-a")[1] == "m2"
        await store.delete("ws-a", PROVIDER, "p")
        applier.poke()
        while ("ws-a", "p") in providers.scoped:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
    finally:
        await applier.aclose()
        await providers.aclose()


async def test_rotation_reseals_stored_credentials_under_the_first_key(store: ConfigStore) -> None:
    old, new = new_key(), new_key()
    before = service(store, ring(old))
    spec = ProviderSpec("p", "anthropic", api_key=KEY)
    await before.save(await before.prepare_provider("ws-a", spec, "test"))
    await before.save(await before.prepare_provider("ws-a", ProviderSpec("bare", "offline"), "t"))
    after = service(store, ring(new, old))
    assert await after.rotate() == 1  # the row without credentials has nothing to re-seal
    assert await after.rotate() == 0
    only_new = service(store, ring(new))
    resolved = {r.name: r.provider for r in await only_new.resolved()}
    assert resolved["p"] is not None
    assert resolved["p"].api_key == KEY


async def test_a_row_that_cannot_be_applied_is_left_out_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryConfigStore()
    config = service(store, ring(new_key()))
    providers = Providers({"offline": OfflineProvider("offline")}, "offline", grace_s=0.0)
    built = Built()
    applier = ConfigApplier(config.resolved, providers, built, None, {}, 60.0)
    good = ProviderSpec("p", "offline", default_model="m1")
    await config.save(await config.prepare_provider(SHARED, good, "t"))
    await applier.reload()
    assert (SHARED, "p") in providers.scoped
    bad = ProviderSpec("p", "offline", default_model="refused")
    await config.save(await config.prepare_provider(SHARED, bad, "t"))
    try:
        caplog.clear()  # the first reload's line too, when the root logger is at INFO
        with caplog.at_level(logging.INFO, logger="cadenza.application.config_apply"):
            await applier.reload()
            await applier.reload()  # unchanged since it failed: not tried again
        assert built.specs == [(SHARED, "m1"), (SHARED, "refused")]
        assert (SHARED, "p") not in providers.scoped  # the old configuration is not kept
        said = [r.getMessage() for r in caplog.records if r.name.endswith("config_apply")]
        assert said == [
            "runtime configuration of provider 'p' (workspace *) not applied: URL refused",
            "runtime configuration removed: provider 'p' (*)",
        ]
    finally:
        await providers.aclose()
