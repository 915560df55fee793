"""PII redaction on every SQL backend: the rules' store, and the canary run at the store
level — every payload path of a process carries canaries, the stored rows (every column of
every table, read back with SELECT) hold none of them, the running tasks and the HTTP peer saw
the real values, the API's reads show the redacted values and where, and a second runtime on
the same database (another worker after the first one stopped) continues the instance from
the sealed journal with the real values."""

from __future__ import annotations

import asyncio

from tests.integration.engine_harness import engine_on
from tests.integration.pii_canaries import (
    CANARIES,
    RULES,
    failing,
    hits,
    inputs,
    peer,
    process,
    scan_rows,
)

from cadenza.application.pii_rules import StoredRules
from cadenza.bootstrap import Runtime
from cadenza.domain.commands import SignalTask, StartInstance
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
        assert await store.rules(WS) is None and await store.all_rules() == []
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
            failed = await first.engine.submit(StartInstance("pii-fails", inputs()))
            assert isinstance(failed, str)
            bad = await asyncio.wait_for(first.engine.wait_finished(failed), 20)
            assert bad.status.value == "failed" and CANARIES["email"] in str(bad.error)
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
            journal = [e.data() for _, e in await second.store.journal(iid)]
            assert CANARIES["phone"] in str(journal)
            assert isinstance(second.store, SqlStore)
            engine = second.store.engine
            # the API's reads: redacted values, and where
            queries = SqlQueries(engine, second.store.codec)
            row = await queries.instance(WS, iid)
            assert row is not None
            assert hits(str(row.inputs) + str(row.outputs)) == [], (row.inputs, row.outputs)
            assert "[email]" in str(row.inputs) and "[employee]" in str(row.outputs)
            paths = {(column, r.path) for column, r in row.redacted}
            assert ("inputs", "$.email") in paths and ("outputs", "$.comment") in paths
            tasks = await queries.tasks(WS, _filter(iid))
            assert hits(str(tasks)) == []
            fields = {(t["node_id"], f["field"]) for t in tasks for f in t["redacted"]}  # type: ignore[union-attr]
            assert {("ask", "detail"), ("compute", "output"), ("bad", "error")} <= fields
            api_journal = await queries.journal(WS, iid)
            assert api_journal is not None and hits(str([e.data() for _, e in api_journal])) == []
            # every column of every table
            assert await scan_rows(engine, metadata.sorted_tables) == {}


def _filter(iid: str):  # type: ignore[no-untyped-def]
    from cadenza.application.ports_api import TaskFilter

    return TaskFilter(instance_id=iid, limit=100)


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
        plain = {"text": "nothing personal here, order 1234567890123 on 2026-12-02"}
        iid = await rt.engine.submit(StartInstance("pii-fails", plain))
        assert isinstance(iid, str)
        await asyncio.wait_for(rt.engine.wait_finished(iid), 20)
        row = await rt.store.get_instance(iid)
        assert row is not None and row.inputs == plain  # not sealed: nothing was found
