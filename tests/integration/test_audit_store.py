"""The audit row of a change commits in the change's own transaction (on every backend): the
store takes the pending entry, a refused change leaves no row, and a change no store took is
appended right after it; the engine's batches commit the rows of their commands (a poisoned
command isolated, a conflict run again). Filters and the tenant scope of ``SqlAuditLog``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.batch_faults import BatchFaults
from tests.integration.engine_harness import doc, engine_on
from typer.testing import CliRunner

from cadenza.application.audit import NEW_ID, Auditor, Target, take_pending
from cadenza.application.audit_ports import AuditEntry, AuditQuery
from cadenza.application.identity import Principal, Role
from cadenza.application.ports import StoreConflict
from cadenza.application.ports_api import IdentityConflict, User, Workspace
from cadenza.domain import commands as cmd
from cadenza.domain.errors import DomainError
from cadenza.entrypoints.cli import app
from cadenza.infrastructure.audit_memory import MemoryAuditLog
from cadenza.infrastructure.secrets_crypto import new_key
from cadenza.infrastructure.sql.audit import SqlAuditLog
from cadenza.infrastructure.sql.database import create_engine, normalize_url, upgrade
from cadenza.infrastructure.sql.identity import SqlIdentityStore
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import audit

ADMIN = Principal("ws-1", Role.ADMIN, user_id="u-admin")


class Clock:
    def now(self) -> float:
        return 1000.0


class CountingLog(SqlAuditLog):
    """Counts the rows appended on their own (not taken by a change's transaction)."""

    appended = 0

    async def append(self, entry: AuditEntry) -> None:
        self.appended += 1
        await super().append(entry)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(upgrade, database_url)
    e = create_engine(normalize_url(database_url))
    try:
        yield e
    finally:
        await e.dispose()


async def _rows(engine: AsyncEngine) -> list[tuple[str, str, str | None]]:
    async with engine.connect() as conn:
        stmt = sa.select(audit.c.action, audit.c.target_id, audit.c.workspace_id)
        return [tuple(r) for r in (await conn.execute(stmt.order_by(audit.c.id))).all()]


def _user(uid: str, name: str) -> User:
    return User(uid, name, "not-a-real-hash", False, False, 1.0)


async def test_a_change_commits_its_audit_row_in_its_own_transaction(engine: AsyncEngine) -> None:
    log = CountingLog(engine)
    auditor = Auditor(log, Clock())
    store = SqlIdentityStore(engine)
    async with auditor.act(ADMIN, "user.create", Target("user", NEW_ID)):
        await store.add_user(_user("u-1", "first"))
    assert log.appended == 0  # the store's transaction took the row
    assert await _rows(engine) == [("user.create", "u-1", None)]


async def test_a_refused_change_leaves_no_audit_row(engine: AsyncEngine) -> None:
    auditor = Auditor(CountingLog(engine), Clock())
    store = SqlIdentityStore(engine)
    await store.add_user(_user("u-1", "taken"))
    with pytest.raises(IdentityConflict):
        async with auditor.act(ADMIN, "user.create", Target("user", NEW_ID)):
            await store.add_user(_user("u-2", "taken"))
    assert await _rows(engine) == []


async def test_a_write_that_changes_nothing_takes_no_row(engine: AsyncEngine) -> None:
    """Revoking another workspace's key updates no row: the route then answers 404, and the
    audit log must not have recorded a change (nor the other workspace's key id)."""
    auditor = Auditor(CountingLog(engine), Clock())
    store = SqlIdentityStore(engine)

    async def revoke() -> None:  # what the route does: 404 when nothing was revoked
        async with auditor.act(ADMIN, "api_key.revoke", Target("api_key", "k-elsewhere")):
            if not await store.revoke_key("ws-1", "k-elsewhere"):
                raise LookupError("no such key")

    with pytest.raises(LookupError):
        await revoke()
    assert await _rows(engine) == []


async def test_a_change_no_store_took_is_appended_after_it(engine: AsyncEngine) -> None:
    log = CountingLog(engine)
    auditor = Auditor(log, Clock())
    async with auditor.act(ADMIN, "instance.cancel", Target("instance", "i-1")):
        pass  # e.g. a command the engine commits in its own batch
    assert log.appended == 1
    assert await _rows(engine) == [("instance.cancel", "i-1", "ws-1")]


async def test_the_first_write_of_a_change_takes_the_row_once(engine: AsyncEngine) -> None:
    auditor = Auditor(CountingLog(engine), Clock())
    store = SqlIdentityStore(engine)
    await store.add_workspace(Workspace("ws-1", "one", 1.0))
    await store.add_user(_user("u-1", "member"))
    async with auditor.act(ADMIN, "membership.set", Target("membership", "u-1", "ws-1")):
        await store.set_member("ws-1", "u-1", "viewer")
        await store.revoke_sessions("u-1")
    assert await _rows(engine) == [("membership.set", "u-1", "ws-1")]


APPROVAL = doc([{"id": "ask", "type": "approval", "config": {"title": "Go?"}}], id="ask")


async def test_an_engine_batch_commits_its_commands_rows_and_isolates_a_poisoned_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four starts in one batch; the fourth fails after the batch's rows were saved. The
    batch rolls back, each command is run alone: three instances and their three rows
    commit (each named by its instance), the fourth leaves neither."""
    async with engine_on(database_url) as rt:
        assert isinstance(rt.store, SqlStore)
        rt.engine.use_audit(take_pending)
        log = CountingLog(rt.database())
        auditor = Auditor(log, Clock())
        await rt.definitions.publish(APPROVAL)
        faults = BatchFaults()
        faults.install(rt.store, monkeypatch)
        faults.when_audited(lambda e: e.after == {"n": 3}, lambda: RuntimeError("injected"))

        async def start(n: int) -> str:
            target = Target("instance", NEW_ID)
            async with auditor.act(ADMIN, "instance.start", target, after={"n": n}):
                return str(await rt.engine.submit(cmd.StartInstance("ask", {})))

        got = await asyncio.gather(*(start(n) for n in range(4)), return_exceptions=True)
        assert len(faults.batches[0]) == 4  # one batch, then one per command
        assert isinstance(got[3], RuntimeError)
        started = sorted(str(x) for x in got[:3])
        rows = await _rows(rt.database())
        assert sorted(r[1] for r in rows) == started
        assert {(r[0], r[2]) for r in rows} == {("instance.start", "ws-1")}
        assert log.appended == 0  # every row came with its batch
        assert sum((await rt.store.count_instances()).values()) == 3


async def test_a_batch_run_again_after_a_conflict_writes_its_rows_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine_on(database_url) as rt:
        assert isinstance(rt.store, SqlStore)
        rt.engine.use_audit(take_pending)
        auditor = Auditor(CountingLog(rt.database()), Clock())
        await rt.definitions.publish(APPROVAL)
        iid = str(await rt.engine.submit(cmd.StartInstance("ask", {})))
        faults = BatchFaults()
        faults.install(rt.store, monkeypatch)
        conflicts = [StoreConflict("injected")]
        faults.fail = lambda changes: conflicts.pop() if conflicts and changes.audit else None
        async with auditor.act(ADMIN, "instance.cancel", Target("instance", iid)):
            assert await rt.engine.submit(cmd.CancelInstance(iid)) == cmd.Outcome.CANCELLED
        assert [len(b) for b in faults.batches if b] == [1, 1]  # saved twice, committed once
        assert await _rows(rt.database()) == [("instance.cancel", iid, "ws-1")]
        refused = cmd.CancelInstance("no-such-instance")
        with pytest.raises(DomainError):
            async with auditor.act(ADMIN, "instance.cancel", Target("instance", "nope")):
                await rt.engine.submit(refused)
        assert await _rows(rt.database()) == [("instance.cancel", iid, "ws-1")]


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_queries_filter_and_scope_alike(engine: AsyncEngine, kind: str) -> None:
    log = SqlAuditLog(engine) if kind == "sql" else MemoryAuditLog()
    auditor = Auditor(log, Clock())
    for ws, action, target in [
        ("ws-1", "definition.save", "a"),
        ("ws-2", "definition.publish", "b@1"),
        ("ws-1", "definition.publish", "a@1"),
        ("ws-1", "secret.put", "TOKEN"),
    ]:
        await auditor.record(auditor.entry(ADMIN, action, Target("x", target, ws)))
    system = Principal("ws-1", Role.ADMIN, user_id="root", is_system_admin=True)

    async def targets(p: Principal, **kw: object) -> list[str]:
        q = AuditQuery(scope=None, **kw)  # type: ignore[arg-type]
        return [e.target_id for e in await auditor.query(p, q)]

    assert await targets(system) == ["TOKEN", "a@1", "b@1", "a"]
    assert await targets(ADMIN) == ["TOKEN", "a@1", "a"]
    assert await targets(ADMIN, workspace_id="ws-2") == []
    assert await targets(system, action="definition.p") == ["a@1", "b@1"]
    assert await targets(system, action="definition.publish", workspace_id="ws-2") == ["b@1"]
    assert await targets(system, after_id=1, limit=2) == ["b@1", "a@1"]
    assert await targets(system, before_id=3) == ["b@1", "a"]
    assert await targets(system, action="%") == []  # a prefix, not a pattern


def test_the_secrets_cli_leaves_an_audit_row_without_the_value(tmp_path: Path) -> None:
    """``cadenza secrets set|rotate`` write the database directly, not through the API."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    env = {"CADENZA_SECRETS_KEY": new_key()}
    args = ["secrets", "set", "API_TOKEN", "-w", "ws-1", "--database-url", url]
    result = CliRunner().invoke(app, args, input="cli-canary-value-31f\n", env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["secrets", "rotate", "--database-url", url], env=env)
    assert result.exit_code == 0, result.output

    async def read() -> list[dict[str, object]]:
        e = create_engine(normalize_url(url))
        try:
            async with e.connect() as conn:
                found = await conn.execute(sa.select(audit).order_by(audit.c.id))
                return [dict(r._mapping) for r in found.all()]
        finally:
            await e.dispose()

    rows = asyncio.run(read())
    assert [(r["action"], r["actor_type"], r["workspace_id"], r["target_id"]) for r in rows] == [
        ("secret.put", "cli", "ws-1", "API_TOKEN"),
        ("secret.rotate", "cli", None, "*"),
    ]
    assert "cli-canary-value-31f" not in repr(rows)


@pytest.mark.parametrize("kind", ["sql", "memory"])
async def test_prune_deletes_only_the_oldest_rows_before_the_horizon(
    engine: AsyncEngine, kind: str
) -> None:
    """The audit retention (``CADENZA_AUDIT_RETENTION_S``): rows written before the horizon
    go, oldest first and at most ``limit`` a call; newer rows stay."""
    log = SqlAuditLog(engine) if kind == "sql" else MemoryAuditLog()
    auditor = Auditor(log, Clock())
    for at, target in [(10.0, "a"), (20.0, "b"), (30.0, "c"), (40.0, "d")]:
        entry = auditor.entry(ADMIN, "definition.save", Target("x", target, "ws-1"))
        await log.append(dataclasses.replace(entry, at=at))
    system = Principal("ws-1", Role.ADMIN, user_id="root", is_system_admin=True)

    async def left() -> list[str]:
        return [e.target_id for e in await auditor.query(system, AuditQuery(scope=None))]

    assert await log.prune(35.0, 2) == 2
    assert await left() == ["d", "c"]
    assert await log.prune(35.0, 2) == 1
    assert await log.prune(35.0, 2) == 0
    assert await left() == ["d"]
