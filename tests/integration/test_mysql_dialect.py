"""What MySQL / MariaDB does differently, held to what SQLite and PostgreSQL do: precision,
text and JSON kept as given, names compared byte by byte, shared agent names unique without a
partial index, claims that skip locked rows, deadlocks as conflicts, outages as outages."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from asyncmy.errors import OperationalError, ProgrammingError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.net import free_port

from cadenza.application.ports import Changes, InstanceRow, StoreConflict, StoreUnavailable
from cadenza.application.ports_api import IdentityConflict, Workspace
from cadenza.domain.status import TaskStatus
from cadenza.domain.tasks import Task
from cadenza.infrastructure.sql.database import MIGRATIONS, create_engine, normalize_url, upgrade
from cadenza.infrastructure.sql.faults import unavailable
from cadenza.infrastructure.sql.identity import SqlIdentityStore
from cadenza.infrastructure.sql.schema_version import migration_head
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import agents, instances, metadata, tasks
from cadenza.infrastructure.sql.transaction import SqlTransaction

NOW = 1764646056.1234567  # 17 significant digits: a single-precision FLOAT keeps 7


@pytest.fixture
async def store(mariadb_database_url: str) -> AsyncIterator[SqlStore]:
    await asyncio.to_thread(upgrade, mariadb_database_url)
    s = SqlStore(create_engine(mariadb_database_url))
    try:
        yield s
    finally:
        await s.close()


def _instance(iid: str, **changes: object) -> InstanceRow:
    row = InstanceRow(iid, "p", 1, "running", {}, None, None, None, NOW, NOW, 1)
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


def _task(tid: str, available_at: float) -> Task:
    return Task(
        tid, "", "n", "transform", TaskStatus.SCHEDULED, NOW, NOW, available_at=available_at
    )


async def _save(store: SqlStore, changes: Changes) -> None:
    async with store.transaction() as tx:
        await tx.save(changes)


async def test_timestamps_keep_double_precision(store: SqlStore) -> None:
    await _save(
        store, Changes(new_instances=[_instance("i1")], new_tasks=[("i1", _task("t", NOW))])
    )
    row = await store.get_instance("i1")
    assert row is not None
    assert (row.created_at, row.updated_at) == (NOW, NOW)
    [lease] = await store.claim("w", 1, NOW + 1, 30.0, lambda: "tok")
    assert lease.lease_expires_at == NOW + 31.0
    [task] = await store.task_rows("i1")
    assert (task["available_at"], task["lease_expires_at"]) == (NOW, NOW + 31.0)


async def test_json_and_long_text_come_back_as_given(store: SqlStore) -> None:
    outputs = {"zebra": 1, "b": [2**70, 0.1], "a": {"y": None, "x": "ü"}}
    error = "x" * 100_000  # past the 65,535 bytes of MySQL's TEXT
    await _save(store, Changes(new_instances=[_instance("i1", outputs=outputs, error=error)]))
    row = await store.get_instance("i1")
    assert row is not None
    assert row.outputs == outputs
    assert row.outputs is not None
    assert list(row.outputs) == ["zebra", "b", "a"]  # key order
    assert row.error == error


async def test_a_value_too_long_for_its_column_is_refused_not_cut(store: SqlStore) -> None:
    with pytest.raises(DBAPIError, match="1406"):
        await store.execute(
            sa.text("INSERT INTO workspaces (id, name, created_at) VALUES ('w', :n, 1)"),
            [{"n": "n" * 81}],
        )


async def test_names_differing_in_case_are_different_names(store: SqlStore) -> None:
    identity = SqlIdentityStore(store.engine)
    await identity.add_workspace(Workspace("w1", "Team", 1.0))
    await identity.add_workspace(Workspace("w2", "team", 1.0))
    with pytest.raises(IdentityConflict):
        await identity.add_workspace(Workspace("w3", "team", 1.0))
    assert [w.name for w in await identity.workspaces()] == ["Team", "team"]


async def test_shared_agent_names_are_unique_without_a_partial_index(store: SqlStore) -> None:
    def agent(agent_id: str, name: str, workspace: str | None) -> dict[str, object]:
        return {
            "id": agent_id,
            "name": name,
            "type": "worker",
            "capabilities": [],
            "config": {},
            "capacity": 1,
            "weight": 1,
            "status": "healthy",
            "created_at": 1.0,
            "updated_at": 1.0,
            "workspace_id": workspace,
        }

    await store.execute(
        agents.insert(),
        [agent("1", "x", None), agent("2", "x", "a"), agent("3", "x", "b"), agent("4", "y", "a")],
    )
    for duplicate in (agent("5", "x", None), agent("6", "x", "a")):
        with pytest.raises(IntegrityError):
            await store.execute(agents.insert(), [duplicate])
    await store.execute(agents.insert(), [agent("7", "y", None)])  # a shared "y" beside a's
    await store.execute(agents.update().where(agents.c.id == "1").values(workspace_id="c"))
    await store.execute(agents.insert(), [agent("8", "x", None)])  # "x" is no longer shared


async def test_a_claim_skips_tasks_another_transaction_holds(store: SqlStore) -> None:
    seeded = [("i1", _task("t1", 1.0)), ("i1", _task("t2", 2.0))]
    await _save(store, Changes(new_instances=[_instance("i1")], new_tasks=seeded))
    async with store.engine.connect() as other:
        held = sa.select(tasks.c.id).where(tasks.c.id == "t1").with_for_update()
        assert (await other.execute(held)).scalar_one() == "t1"
        leases = await store.claim("w", 10, 5.0, 30.0, lambda: "tok")
        assert [x.task_id for x in leases] == ["t2"]
        await other.rollback()
    assert [x.task_id for x in await store.claim("w", 10, 5.0, 30.0, lambda: "tok")] == ["t1"]


async def test_a_deadlock_between_two_transactions_is_a_conflict(store: SqlStore) -> None:
    await _save(store, Changes(new_instances=[_instance("i1"), _instance("i2")]))
    first_locked, second_locked = asyncio.Event(), asyncio.Event()

    async def cross(mine: str, theirs: str, locked: asyncio.Event, other: asyncio.Event) -> None:
        async with store.transaction() as tx:
            await tx.lock_instances([mine])
            locked.set()
            await other.wait()
            await tx.lock_instances([theirs])

    results = await asyncio.gather(
        cross("i1", "i2", first_locked, second_locked),
        cross("i2", "i1", second_locked, first_locked),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["NoneType", "StoreConflict"]
    assert any(isinstance(r, StoreConflict) and "1213" in str(r.__cause__) for r in results)


async def test_a_lease_renewal_that_loses_a_deadlock_is_run_again(store: SqlStore) -> None:
    seeded = [("i1", _task("t1", 1.0)), ("i1", _task("t2", 1.0))]
    await _save(store, Changes(new_instances=[_instance("i1")], new_tasks=seeded))
    assert len(await store.claim("w", 2, 5.0, 30.0, lambda: "tok")) == 2
    async with store.engine.connect() as other:
        # the heavier transaction (rows written): InnoDB rolls the renewal back, not this one
        await other.execute(
            agents.insert(),
            [
                {
                    "id": f"a{n}",
                    "name": f"a{n}",
                    "type": "worker",
                    "capabilities": [],
                    "config": {},
                    "capacity": 1,
                    "weight": 1,
                    "status": "healthy",
                    "created_at": 1.0,
                    "updated_at": 1.0,
                }
                for n in range(50)
            ],
        )
        deadlocks = await _deadlocks(store.engine)
        lock = sa.select(tasks.c.id).with_for_update()
        await other.execute(lock.where(tasks.c.id == "t2"))
        renewal = asyncio.create_task(store.renew("w", 99.0))  # takes t1, waits for t2
        await _until_a_transaction_waits_for_a_lock(store.engine)
        await other.execute(lock.where(tasks.c.id == "t1"))  # the cycle: renewal loses
        await other.commit()
        assert await renewal == 2
    assert await _deadlocks(store.engine) == deadlocks + 1
    assert [r["lease_expires_at"] for r in await store.task_rows("i1")] == [99.0, 99.0]


async def _until_a_transaction_waits_for_a_lock(engine: AsyncEngine) -> None:
    waiting = sa.text(
        "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
    )
    async with asyncio.timeout(20):
        while True:
            async with engine.connect() as conn:
                if await conn.scalar(waiting):
                    return
            # InnoDB refreshes this table only after 100 ms without a read of it
            await asyncio.sleep(0.15)


async def _deadlocks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'"))).one()
    return int(row[1])


async def test_a_lock_wait_timeout_is_a_conflict(store: SqlStore) -> None:
    await _save(store, Changes(new_instances=[_instance("i1")]))
    async with store.engine.connect() as other:
        held = sa.select(instances.c.id).where(instances.c.id == "i1").with_for_update()
        assert (await other.execute(held)).scalar_one() == "i1"

        async def lock() -> None:
            async with store.transaction() as tx:
                assert isinstance(tx, SqlTransaction)
                await tx.conn.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
                await tx.lock_instances(["i1"])

        with pytest.raises(StoreConflict, match="1205"):
            await lock()
        await other.rollback()


@pytest.mark.parametrize("code", [2006, 2013, 1053])
def test_a_connection_lost_or_a_server_shutting_down_is_an_outage(code: int) -> None:
    exc = DBAPIError("SELECT 1", None, OperationalError(code, "gone"))
    assert isinstance(unavailable(exc), StoreUnavailable)


def test_a_wrong_statement_is_not_an_outage() -> None:
    exc = DBAPIError("SELECT x", None, ProgrammingError(1054, "Unknown column 'x'"))
    assert unavailable(exc) is None


async def test_sessions_read_committed_strict_utf8mb4(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT @@tx_isolation, @@sql_mode, @@character_set_connection")
            )
        ).one()
    assert row[0] == "READ-COMMITTED"
    assert "STRICT_ALL_TABLES" in row[1].split(",")
    assert row[2] == "utf8mb4"


@pytest.mark.mariadb
async def test_a_server_that_is_away_makes_the_store_unavailable() -> None:
    engine: AsyncEngine = create_engine(f"mysql://u:p@127.0.0.1:{free_port()}/db")
    store = SqlStore(engine)
    try:
        with pytest.raises(StoreUnavailable, match="2003"):
            await store.get_instance("i1")
        with pytest.raises(StoreUnavailable, match="2003"):
            await store.probe()
    finally:
        await store.close()


def test_db_upgrade_on_the_command_line(mariadb_database_url: str) -> None:
    env = {**os.environ, "CADENZA_DATABASE_URL": ""}
    password = urlsplit(mariadb_database_url).password
    assert password
    for _ in range(2):  # the second run finds the schema up to date
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cadenza",
                "db",
                "upgrade",
                "--database-url",
                mariadb_database_url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "is up to date" in done.stdout
        assert password not in done.stdout + done.stderr
        assert done.stderr == ""  # not even the driver's note on alembic_version's key

    async def version() -> str:
        engine = create_engine(mariadb_database_url)
        try:
            async with engine.connect() as conn:
                return str(await conn.scalar(sa.text("SELECT version_num FROM alembic_version")))
        finally:
            await engine.dispose()

    assert asyncio.run(version()) == migration_head()


def test_migrations_go_down_to_nothing_and_up_again(mariadb_database_url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(mariadb_database_url))
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")


def test_processes_starting_together_migrate_one_at_a_time(mariadb_database_url: str) -> None:
    # MySQL's DDL commits at once: without the migration lock, two of these would both
    # create the first table and one would fail with "table already exists"
    command = [sys.executable, "-m", "cadenza", "db", "upgrade"]
    env = {**os.environ, "CADENZA_DATABASE_URL": mariadb_database_url}
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()

    async def tables() -> int:
        engine = create_engine(mariadb_database_url)
        try:
            async with engine.connect() as conn:
                return len(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    assert asyncio.run(tables()) == len(metadata.tables) + 1  # and alembic_version


def test_mysql_and_mariadb_urls_pick_asyncmy_and_utf8mb4() -> None:
    assert normalize_url("mysql://u:p@h:3306/db") == "mysql+asyncmy://u:p@h:3306/db?charset=utf8mb4"
    assert (
        normalize_url("mariadb://u:p@h/db?ssl=x")
        == "mysql+asyncmy://u:p@h/db?ssl=x&charset=utf8mb4"
    )
    assert (
        normalize_url("mysql+asyncmy://h/db?charset=latin1")
        == "mysql+asyncmy://h/db?charset=latin1"
    )
