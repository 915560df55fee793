"""PII redaction on every SQL backend: the rules' store, and the canary run at the store
level — every payload path of a process carries canaries, the stored rows (every column of
every table, read back with SELECT) hold none of them, the running tasks and the HTTP peer saw
the real values, the API's reads show the redacted values and where, and a second runtime on
the same database (another worker after the first one stopped) continues the instance from
the sealed journal with the real values."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.engine_harness import engine_on
from tests.integration.pii_canaries import (
    BIG,
    CANARIES,
    RULES,
    failing,
    hits,
    inputs,
    peer,
    process,
    scan_rows,
)

from cadenza.application.pii_rules import KeyNeeded, StoredRules
from cadenza.application.ports_api import TaskFilter
from cadenza.application.roles import Principal, Role
from cadenza.bootstrap import Runtime
from cadenza.domain.commands import SignalTask, StartInstance
from cadenza.domain.json import JSONObject
from cadenza.domain.pii import RedactionRules
from cadenza.infrastructure.secrets_crypto import new_key
from cadenza.infrastructure.sql.queries import SqlQueries
from cadenza.infrastructure.sql.redaction import SqlRedactionStore
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import metadata

WS = "default"


async def _enable(rt: Runtime, rules: RedactionRules = RULES) -> None:
    assert rt.redaction is not None
    await rt.redaction.service.store.put_rules(StoredRules(WS, rules, 1.0, "user:test"))
    rt.redaction.rules.invalidate()
    await rt.redaction.rules.fresh()


async def _task_id(rt: Runtime, iid: str, node: str) -> str:
    for _ in range(400):
        rows = {r["node_id"]: r for r in await rt.store.task_rows(iid)}
        if node in rows and rows[node]["status"] == "waiting":
            return str(rows[node]["id"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"{node} never waited")


async def test_the_rules_are_stored_replaced_and_listed(database_url: str) -> None:
    async with engine_on(database_url, secrets_key=new_key()) as rt:
        assert isinstance(rt.store, SqlStore)
        store = SqlRedactionStore(rt.store)
        assert await store.rules(WS) is None
        assert await store.all_rules() == []
        await store.put_rules(StoredRules(WS, RULES, 1.0, "user:a"))
        off = RedactionRules(False, frozenset({"email"}))
        await store.put_rules(StoredRules("other", off, 2.0, "key:b"))
        assert await store.rules(WS) == StoredRules(WS, RULES, 1.0, "user:a")
        await store.put_rules(StoredRules(WS, off, 3.0, "user:c"))
        assert [s.rules for s in await store.all_rules()] == [off, off]


async def test_canaries_stay_out_of_every_row_and_the_engine_continues_elsewhere(
    database_url: str,
) -> None:
    key = new_key()  # one key ring for both runtimes, as for every process of a deployment
    async with peer() as p:
        async with engine_on(database_url, secrets_key=key) as first:
            await _enable(first)
            stored = await first.definitions.publish(process(p.url))
            iid = await first.engine.submit(StartInstance(stored.process_id, inputs()))
            assert isinstance(iid, str)
            ask = await _task_id(first, iid, "ask")
            await first.definitions.publish(failing(p.url))
            failed = await first.engine.submit(StartInstance("pii-fails", inputs(big=True)))
            assert isinstance(failed, str)
            bad = await asyncio.wait_for(first.engine.wait_finished(failed), 20)
            assert bad.status.value == "failed"
            assert CANARIES["email"] in str(bad.error)
        # the first worker is gone: another one continues from the sealed journal
        async with engine_on(database_url, secrets_key=key) as second:
            comment = f"fine by {CANARIES['email']} {CANARIES['custom']}"
            signal = SignalTask(iid, ask, {"decision": "approve", "comment": comment})
            await second.engine.submit(signal)
            done = await asyncio.wait_for(second.engine.wait_finished(iid), 30)
            assert done.status.value == "completed", done.error
            outputs = done.outputs or {}
            # what the running tasks saw: the real values
            assert outputs["email_len"] == len(CANARIES["email"])
            assert outputs["text"] == inputs()["text"]
            assert outputs["comment"] == comment
            assert CANARIES["iban"] in str(outputs["echo"])
            assert CANARIES["card"] in str(outputs["answer"])  # the model echoed the prompt
            assert any(CANARIES["key"] in str(r) for r in p.received)
            # the store's own reads (the engine's side) open the sealed values
            offloaded = await second.store.get_instance(failed)  # blob, then sealed marker
            assert offloaded is not None
            assert offloaded.inputs["big"] == BIG
            journal = [e.data() for _, e in await second.store.journal(iid)]
            assert CANARIES["phone"] in str(journal)
            assert isinstance(second.store, SqlStore)
            engine = second.store.engine
            # the API's reads: redacted values, and where
            queries = SqlQueries(engine, second.store.codec)
            row = await queries.instance(WS, iid)
            assert row is not None
            assert hits(str(row.inputs) + str(row.outputs)) == [], (row.inputs, row.outputs)
            assert "[email]" in str(row.inputs)
            assert "[employee]" in str(row.outputs)
            paths = {(column, r.path) for column, r in row.redacted}
            assert ("inputs", "$.email") in paths
            assert ("outputs", "$.comment") in paths
            tasks = await queries.tasks(WS, TaskFilter(instance_id=iid, limit=100))
            assert hits(str(tasks)) == []
            fields = {(str(t["node_id"]), f["field"]) for t in tasks for f in _list(t["redacted"])}
            assert {("ask", "detail"), ("compute", "output"), ("bad", "error")} <= fields
            api_journal = await queries.journal(WS, iid)
            assert api_journal is not None
            assert hits(str([e.data() for _, e in api_journal])) == []
            # every column of every table
            assert await scan_rows(engine, metadata.sorted_tables) == {}


def _list(value: object) -> list[dict[str, object]]:
    assert isinstance(value, list)
    return value


async def test_off_by_default_and_nothing_is_sealed_without_a_detection(
    database_url: str,
) -> None:
    async with peer() as p, engine_on(database_url, secrets_key=new_key()) as rt:
        await rt.definitions.publish(failing(p.url))
        iid = await rt.engine.submit(StartInstance("pii-fails", inputs()))
        assert isinstance(iid, str)
        await asyncio.wait_for(rt.engine.wait_finished(iid), 20)
        assert isinstance(rt.store, SqlStore)
        found = await scan_rows(rt.store.engine, metadata.sorted_tables)
        assert "instances.inputs" in found  # stored as given: redaction is off by default
        await _enable(rt)
        plain: JSONObject = {"text": "nothing personal here, order 1234567890123 on 2026-12-02"}
        iid = await rt.engine.submit(StartInstance("pii-fails", plain))
        assert isinstance(iid, str)
        await asyncio.wait_for(rt.engine.wait_finished(iid), 20)
        row = await rt.store.get_instance(iid)
        assert row is not None
        assert row.inputs == plain


async def test_a_change_reaches_another_process_over_the_bus(
    tmp_path: Path, redis_bus_url: str
) -> None:
    """Two runtimes (two processes' worth of wiring) on one database and one Redis bus, with a
    refresh interval of an hour: the second applies the first's change when the message
    arrives."""
    url, key = f"sqlite:///{tmp_path}/bus.db", new_key()
    same = {"bus_url": redis_bus_url, "redaction_refresh_s": 3600, "secrets_key": key}
    async with engine_on(url, **same) as a, engine_on(url, **same) as b:
        assert a.redaction is not None
        assert b.redaction is not None
        assert b.redaction.rules.scanner(WS) is None
        admin = Principal(WS, Role.ADMIN, user_id="u")
        await a.redaction.service.set(admin, WS, RULES)
        assert a.redaction.rules.scanner(WS) is not None  # the process that took it: at once
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while b.redaction.rules.scanner(WS) is None:
            assert loop.time() < deadline, "the change never reached the other process"
            await asyncio.sleep(0.02)


async def test_turning_it_on_without_a_key_is_refused_on_a_server_database(
    pg_database_url: str,
) -> None:
    """No key ring on PostgreSQL: the originals could not be sealed, so redaction is not
    turned on (the route answers 409) rather than storing values that could not be read back."""
    async with engine_on(pg_database_url) as rt:
        assert rt.redaction is not None
        admin = Principal(WS, Role.ADMIN, user_id="u")
        with pytest.raises(KeyNeeded, match="CADENZA_SECRETS_KEY"):
            await rt.redaction.service.set(admin, WS, RULES)
        await rt.redaction.service.set(admin, WS, RedactionRules(False))  # off needs no key
        assert rt.redaction.rules.scanner(WS) is None
