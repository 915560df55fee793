"""``cadenza secrets rotate`` on every SQL backend (docs/secrets.md#rotation): workspace
secrets, the sealed credentials of stored runtime configuration and the sealed PII originals
of payloads (rows, journal events, error texts and offloaded blobs) are re-sealed under the
first key of the ring, in pages, skipping what is done already; then the old key is dropped
and everything still opens: the waiting instance continues with its real values, the stored
provider and MCP server keep their credentials, and no row and no blob holds anything sealed
under the old key."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from tests.integration.engine_harness import engine_on
from tests.integration.pii_canaries import BIG, CANARIES, RULES, failing, inputs, peer, process

from cadenza.application.config_model import McpSpec, ProviderSpec
from cadenza.application.payload_reseal import PayloadRows, RowChange, StoredRow
from cadenza.application.pii_rules import StoredRules
from cadenza.bootstrap import Runtime
from cadenza.bootstrap.store import payload_rotation
from cadenza.domain.commands import SignalTask, StartInstance
from cadenza.entrypoints.cli_secrets import _rotate_all
from cadenza.infrastructure.secrets_crypto import key_id, new_key, parse_keys
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.sql.tables import metadata

WS = "default"
A, B = new_key(), new_key()
API_KEY = "sk-rotate-provider-0001"
HEADER = "Bearer mcp-rotate-0002"


def kid(key: str) -> str:
    return key_id(parse_keys(key, "test")[0])


async def _enable(rt: Runtime) -> None:
    assert rt.redaction is not None
    await rt.redaction.service.store.put_rules(StoredRules(WS, RULES, 1.0, "user:test"))
    rt.redaction.rules.invalidate()
    await rt.redaction.rules.fresh()


async def _waiting(rt: Runtime, iid: str, node: str) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        rows = {r["node_id"]: r for r in await rt.store.task_rows(iid)}
        if node in rows and rows[node]["status"] == "waiting":
            return str(rows[node]["id"])
        assert loop.time() < deadline, f"{node} never waited"
        await asyncio.sleep(0.05)


async def _mentions(rt: Runtime, blob_dir: Path, text: str) -> list[str]:
    """Where ``text`` occurs: ``table.column`` of any row of any table, or a blob file."""
    assert isinstance(rt.store, SqlStore)
    found: list[str] = []
    async with rt.store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if text.encode() in raw:
                        found.append(f"{table.name}.{column}")
    found += [
        str(p) for p in blob_dir.rglob("*") if p.is_file() and text.encode() in p.read_bytes()
    ]
    return found


class StopAfter:
    """``PayloadRows`` that fails after ``pages`` writes (a rotation stopped midway)."""

    def __init__(self, rows: PayloadRows, pages: int) -> None:
        self._rows = rows
        self._left = pages

    def tables(self) -> Sequence[str]:
        return self._rows.tables()

    async def page(
        self, table: str, after: tuple[str | int, ...] | None, limit: int
    ) -> list[StoredRow]:
        return await self._rows.page(table, after, limit)

    async def update(self, changes: Sequence[RowChange]) -> int:
        if self._left == 0:
            raise RuntimeError("stopped")
        self._left -= 1
        return await self._rows.update(changes)

    async def mentions(self, instance_id: str, text: str) -> bool:
        return await self._rows.mentions(instance_id, text)


async def test_rotate_reseals_secrets_config_and_pii_markers_then_the_old_key_can_go(
    database_url: str, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    common = {"blob_dir": str(blobs)}
    async with peer() as p:
        # ---- everything sealed under A ------------------------------------------------------
        async with engine_on(database_url, secrets_key=A, **common) as first:
            await _enable(first)
            await first.secrets.put(WS, "TOKEN", "secret-value-0003", "test")
            assert first.config is not None
            provider = ProviderSpec("rot", "anthropic", api_key=API_KEY)
            await first.config.save(
                await first.config.prepare_provider(WS, provider, "test", validate=False)
            )
            mcp = McpSpec("tools", command="cadenza-test-absent", env={"TOKEN": HEADER})
            await first.config.save(await first.config.prepare_mcp(WS, mcp, "t", validate=False))
            await first.definitions.publish(process(p.url))
            big = {**inputs(big=True)}
            iid = await first.engine.submit(StartInstance("pii-canaries", big))
            assert isinstance(iid, str)
            ask = await _waiting(first, iid, "ask")
            await first.definitions.publish(failing(p.url))
            failed = await first.engine.submit(StartInstance("pii-fails", inputs()))
            assert isinstance(failed, str)
            bad = await asyncio.wait_for(first.engine.wait_finished(failed), 20)
            assert bad.status.value == "failed"
            under_a = await _mentions(first, blobs, kid(A))
            assert {"instances.inputs", "instances.error", "tasks.detail", "tasks.error"} <= set(
                under_a
            ), under_a
            assert any(str(blobs) in where for where in under_a), under_a  # a blob holds one
            assert {"workspace_secrets.key_id", "runtime_config.key_id"} <= set(under_a)
            assert any(w.startswith("events.") for w in under_a)

        # ---- rotate with [B, A]: stopped after one page, then run again -----------------------
        async with engine_on(database_url, secrets_key=f"{B},{A}", **common) as second:
            rotation = payload_rotation(second.store, second.secrets.cipher)
            assert rotation is not None
            rotation.batch = 2  # several pages per table
            rotation.rows = StopAfter(rotation.rows, 1)
            try:
                await rotation.run()
                raise AssertionError("the first run should have stopped")
            except RuntimeError:
                pass
            lines = await _rotate_all(second)
            assert "re-sealed 1 secret(s)" in lines[0]
            assert "re-sealed 2 runtime configuration item(s)" in lines[1]
            assert "PII marker(s)" in lines[2]
            assert not any("warning" in line or "again" in line for line in lines), lines
            again = await payload_rotation(second.store, second.secrets.cipher).run()  # type: ignore[union-attr]
            assert (again.rows, again.markers, again.blobs) == (0, 0, 0)  # idempotent
            assert await _rotate_all(second) == [
                "re-sealed 0 secret(s) with the current key",
                "re-sealed 0 runtime configuration item(s) with the current key",
                "re-sealed 0 PII marker(s) with the current key: 0 payload row(s), 0 blob(s) "
                "rewritten, 0 old blob(s) deleted",
            ]
            assert await _mentions(second, blobs, kid(A)) == []
            assert await _mentions(second, blobs, kid(B))

        # ---- A dropped: everything still opens --------------------------------------------
        async with engine_on(database_url, secrets_key=B, **common) as third:
            assert third.config is not None
            resolved = {r.name: r for r in await third.config.resolved()}
            assert resolved["rot"].provider is not None
            assert resolved["rot"].provider.api_key == API_KEY
            assert resolved["tools"].mcp is not None
            assert resolved["tools"].mcp.env == {"TOKEN": HEADER}
            assert await third.secrets.reveal(WS, ["TOKEN"]) == {"TOKEN": "secret-value-0003"}
            offloaded = await third.store.get_instance(iid)  # blob, then sealed marker
            assert offloaded is not None
            assert offloaded.inputs["big"] == BIG
            errored = await third.store.get_instance(failed)
            assert errored is not None
            assert CANARIES["email"] in str(errored.error)
            await third.engine.submit(SignalTask(iid, ask, {"decision": "approve"}))
            done = await asyncio.wait_for(third.engine.wait_finished(iid), 30)
            assert done.status.value == "completed", done.error
            outputs = done.outputs or {}
            assert outputs["email_len"] == len(CANARIES["email"])  # the real value
            assert outputs["text"] == inputs()["text"]
            assert await _mentions(third, blobs, kid(A)) == []
