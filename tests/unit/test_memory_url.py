"""``database_url = "memory://"``: the composition root builds the in-memory store and the
in-memory repositories beside it; nothing touches a database file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.bootstrap import build, upgrade_database
from cadenza.domain.agent import AgentType
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.secrets_crypto import new_key
from cadenza.settings import Settings


async def test_memory_url_builds_an_engine_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await upgrade_database("memory://")  # nothing to migrate
    rt = await build(Settings(database_url="memory://", secrets_key=new_key()), run_worker=False)
    try:
        assert isinstance(rt.store, MemoryStore)
        await rt.secrets.put("default", "token", "s3cret", "test")
        assert await rt.secrets.reveal("default", ["token"]) == {"token": "s3cret"}
        await rt.agents.register("helper", AgentType.WORKER, ["triage"], {})
        assert [a.name for a in await rt.agents.agents()] == ["helper"]
        with pytest.raises(ValueError, match="memory:// runs the engine only"):
            rt.database()
    finally:
        await rt.close()
    assert list(tmp_path.iterdir()) == []
