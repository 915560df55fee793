"""Workspace deletion on every SQL backend (docs/workspaces.md): everything a workspace owned
goes, in batches, and nothing of another workspace; a job stopped between two batches resumes
where it stopped with exact totals; unfinished instances are cancelled first; held instances
refuse the request.

Rows are planted from the table metadata: one row in every table with a ``workspace_id``
column and one in every table of an instance, for two workspaces, so a table added tomorrow is
planted (and checked) too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration.engine_harness import engine_on
from tests.integration.planted_rows import column_value

from cadenza.application.config_model import ProviderSpec
from cadenza.application.ports_workspaces import DeletionRequest
from cadenza.application.roles import Principal, Role
from cadenza.application.workspace_deletion import WorkspaceDeletion
from cadenza.application.workspace_deletion_job import DeletionSettings, WorkspaceDeletionJob
from cadenza.domain.errors import Conflict
from cadenza.infrastructure.secrets_crypto import new_key
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.identity import SqlIdentityStore
from cadenza.infrastructure.sql.retention import instance_tables
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import audit, instances, legal_holds, workspaces
from cadenza.infrastructure.sql.workspace_deletion import SqlWorkspaceDeletion, workspace_tables

NOW = 10_000_000.0
ADMIN = Principal("default", Role.ADMIN, user_id="root", is_system_admin=True)


class FakeClock:
    def now(self) -> float:
        return NOW


async def no_pause(_: float) -> None:
    await asyncio.sleep(0)


class Stop(Exception):
    """Stops a job between two batches (as a crash or a lost lease would)."""


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    await asyncio.to_thread(upgrade, database_url)
    s = SqlStore(create_engine(database_url))
    try:
        yield s
    finally:
        await s.close()


def _row(table: sa.Table, ws: str, iid: str, **fixed: object) -> dict[str, object]:
    values: dict[str, object] = {}
    for c in table.columns:
        if c.name in fixed:
            values[c.name] = fixed[c.name]
        elif c.name == "instance_id":
            values[c.name] = iid
        elif c.name == "workspace_id":
            values[c.name] = ws
        elif c.primary_key and c.autoincrement is True:
            continue
        elif not c.nullable or c.primary_key:
            values[c.name] = column_value(c, ws)
    return values


async def plant(store: SqlStore, ws: str, n: int = 3, status: str = "completed") -> list[str]:
    """Workspace ``ws`` with ``n`` instances (a row in every table of each) and a row in every
    other table with a ``workspace_id`` column; the instance ids."""
    await store.execute(workspaces.insert(), [{"id": ws, "name": ws, "created_at": NOW}])
    ids = [f"{ws}-i{i}" for i in range(n)]
    for iid in ids:
        fixed = {"id": iid, "status": status, "parent_instance_id": None, "seq": 1}
        await store.execute(instances.insert(), [_row(instances, ws, iid, **fixed)])
        for table in instance_tables():
            await store.execute(table.insert(), [_row(table, ws, iid)])
    for table in workspace_tables():
        if table is not legal_holds and "instance_id" not in table.c:
            await store.execute(table.insert(), [_row(table, ws, "none")])
    return ids


async def owned(store: SqlStore, ws: str) -> dict[str, int]:
    """Rows of ``ws`` left in every table that has a ``workspace_id`` or ``instance_id``."""
    out: dict[str, int] = {}
    async with store.engine.connect() as conn:
        mine = sa.select(instances.c.id).where(instances.c.workspace_id == ws).scalar_subquery()
        for t in [instances, *instance_tables(), *workspace_tables()]:
            where = t.c.workspace_id == ws if "workspace_id" in t.c else t.c.instance_id.in_(mine)
            out[t.name] = int(
                await conn.scalar(sa.select(sa.func.count()).select_from(t).where(where)) or 0
            )
        out["workspaces"] = int(
            await conn.scalar(
                sa.select(sa.func.count()).select_from(workspaces).where(workspaces.c.id == ws)
            )
            or 0
        )
    return out


def job(store: SqlStore, batch: int = 500, **kw: Any) -> WorkspaceDeletionJob:
    async def cancel(instance_id: str, why: str) -> None:
        stmt = instances.update().where(instances.c.id == instance_id).values(status="cancelled")
        await store.execute(stmt)

    settings = DeletionSettings(batch=batch, pause_s=0.0)
    return WorkspaceDeletionJob(
        SqlWorkspaceDeletion(store),
        FakeClock(),
        settings,
        kw.pop("cancel", cancel),
        sleep=no_pause,
        **kw,
    )


async def request(store: SqlStore, ws: str) -> None:
    service = WorkspaceDeletion(
        SqlWorkspaceDeletion(store), SqlIdentityStore(store.engine), FakeClock()
    )
    await service.request(ADMIN, await service.workspace(ADMIN, ws))


async def deleted_rows(store: SqlStore, ws: str) -> Mapping[str, Any]:
    stmt = sa.select(audit).where(audit.c.action == "workspace.deleted", audit.c.target_id == ws)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    assert len(rows) == 1
    entry = rows[0]._mapping
    assert entry["actor_type"] == "system"
    assert entry["workspace_id"] == ws
    assert entry["before"] == {"name": ws}
    return dict(entry["after"]["deleted"])


def planted(n: int) -> dict[str, int]:
    """What ``plant(…, n)`` put in each table, as the job counts it."""
    out = {"instances": n, **{t.name: n for t in instance_tables()}}
    for t in workspace_tables():
        if t is not legal_holds and "instance_id" not in t.c:
            out[t.name] = 1
    return out


async def test_everything_of_the_workspace_goes_and_nothing_of_another(store: SqlStore) -> None:
    await plant(store, "a")
    await plant(store, "b")
    before_b = await owned(store, "b")
    assert all(n > 0 for t, n in before_b.items() if t != "legal_holds")
    await request(store, "a")
    told: list[str] = []

    async def removed(workspace_id: str) -> None:
        told.append(workspace_id)

    assert not await job(store, removed=removed).run_once()
    assert told == ["a"]  # the agent caches are told once, when the workspace is gone
    assert set((await owned(store, "a")).values()) == {0}
    assert await owned(store, "b") == before_b
    assert await deleted_rows(store, "a") == planted(3)


async def test_a_job_stopped_between_batches_resumes_with_exact_totals(store: SqlStore) -> None:
    await plant(store, "a", n=5)
    await request(store, "a")
    seen: list[Mapping[str, int]] = []

    def stop_after_two(counts: Mapping[str, int]) -> None:
        seen.append(counts)
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        await job(store, batch=2, on_batch=stop_after_two).run_once()
    progress = await SqlWorkspaceDeletion(store).progress("a")
    assert progress is not None
    assert progress.deleted["instances"] == 4
    assert progress.remaining["instances"] == 1
    resumed: list[Mapping[str, int]] = []
    assert not await job(store, batch=2, on_batch=resumed.append).run_once()
    assert set((await owned(store, "a")).values()) == {0}
    assert await deleted_rows(store, "a") == planted(5)
    assert resumed
    assert all(sum(c.values()) > 0 for c in resumed)


async def test_unfinished_instances_are_cancelled_first(store: SqlStore) -> None:
    await plant(store, "a", n=2, status="running")
    await request(store, "a")
    asked: list[str] = []

    async def slow_cancel(instance_id: str, why: str) -> None:
        asked.append(instance_id)  # accepted; the engine finishes the cancel later

    assert await job(store, cancel=slow_cancel).run_once()  # still waiting for them
    assert sorted(asked) == ["a-i0", "a-i1"]
    assert (await owned(store, "a"))["instances"] == 2
    assert not await job(store).run_once()  # this one's cancel finishes them
    assert set((await owned(store, "a")).values()) == {0}


async def test_a_legal_hold_refuses_the_request(store: SqlStore) -> None:
    ids = await plant(store, "a", n=1)
    hold = {"instance_id": ids[0], "workspace_id": "a", "set_by": "user:x", "set_at": NOW}
    await store.execute(legal_holds.insert(), [hold])
    with pytest.raises(Conflict, match=ids[0]):
        await request(store, "a")
    assert await SqlWorkspaceDeletion(store).deleting() == []
    ws = await SqlIdentityStore(store.engine).workspace("a")
    assert ws is not None
    assert ws.state == "active"


async def test_marking_revokes_the_keys_and_is_done_once(store: SqlStore) -> None:
    await plant(store, "a", n=0)
    deletion = SqlWorkspaceDeletion(store)
    req = DeletionRequest("a", "a", NOW, "user:root")
    assert await deletion.mark(req)
    assert not await deletion.mark(req)
    keys = await SqlIdentityStore(store.engine).keys("a")
    assert keys
    assert all(k.revoked for k in keys)
    assert [r.workspace_id for r in await deletion.deleting()] == ["a"]


async def test_another_process_drops_the_workspaces_stored_providers_at_once(
    tmp_path: Path, redis_bus_url: str
) -> None:
    """Two runtimes on one database and one Redis bus, reloading configuration only every
    hour: when the deletion job (in the first) has deleted the workspace, the second drops
    the workspace's stored provider as soon as the job's ``ConfigChanged`` arrives."""
    url = f"sqlite:///{tmp_path}/ws.db"
    same = {"bus_url": redis_bus_url, "cache_refresh_s": 3600, "secrets_key": new_key()}
    async with engine_on(url, **same) as a, engine_on(url, **same) as b:
        assert isinstance(a.store, SqlStore)
        assert a.config is not None
        assert a.retention is not None
        await a.store.execute(
            workspaces.insert(), [{"id": "team", "name": "team", "created_at": NOW}]
        )
        spec = ProviderSpec("own", "anthropic", api_key="sk-team-0001")
        await a.config.save(await a.config.prepare_provider("team", spec, "test", validate=False))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while ("team", "own") not in b.providers.scoped:  # the save's own announcement
            assert loop.time() < deadline, "the provider never reached the other process"
            await asyncio.sleep(0.02)
        await request(a.store, "team")
        deletion = a.retention.deletion.job
        deletion.settings = DeletionSettings(batch=500, pause_s=0.0)
        assert await deletion.run_once() is False  # nothing left pending: the row is gone
        stored = await a.config.items("provider", "team")
        assert [v.name for v in stored if v.source == "database"] == []
        assert ("team", "own") not in a.providers.scoped  # this process: at once
        deadline = loop.time() + 15
        while ("team", "own") in b.providers.scoped:
            assert loop.time() < deadline, "the other process kept the deleted provider"
            await asyncio.sleep(0.02)
