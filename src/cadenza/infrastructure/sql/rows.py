"""Row <-> port conversions and the batched writer of a group commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cadenza.application.payloads import PLAIN, PayloadCodec
from cadenza.application.ports import Changes, InstanceRow, LeaseInfo, StoredDefinition, Timer
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.tasks import Task
from cadenza.infrastructure.sql.payload_rows import RowEncoder
from cadenza.infrastructure.sql.tables import (
    definitions,
    events,
    feed,
    instances,
    outbox,
    tasks,
    timers,
)

LEASE_COLUMNS = (
    tasks.c.id,
    tasks.c.instance_id,
    tasks.c.status,
    tasks.c.attempt,
    tasks.c.leased_to,
    tasks.c.lease_token,
    tasks.c.lease_expires_at,
)


def lease(values: Any) -> LeaseInfo:
    """A lease from a row in ``LEASE_COLUMNS`` order (a SQLAlchemy row or a plain tuple)."""
    task_id, instance_id, status, attempt, leased_to, token, expires = values
    return LeaseInfo(task_id, instance_id, status, int(attempt), leased_to, token, expires)


def timer(r: Any) -> Timer:
    return Timer(r.id, r.instance_id, r.task_id, r.kind, float(r.fire_at))


def definition(r: Any) -> StoredDefinition:
    return StoredDefinition(
        r.process_id,
        int(r.version),
        r.content_hash,
        r.status,
        r.document,
        r.created_at,
        r.workspace_id,
    )


def instance(r: Any) -> InstanceRow:
    return InstanceRow(
        id=r.id,
        process_id=r.process_id,
        version=int(r.version),
        status=r.status,
        inputs=r.inputs,
        outputs=r.outputs,
        error=r.error,
        parent_instance_id=r.parent_instance_id,
        created_at=r.created_at,
        updated_at=r.updated_at,
        seq=int(r.seq),
        workspace_id=r.workspace_id,
        trace_context=r.trace_context,
    )


def plain(mapping: Mapping[str, Any]) -> JSONObject:
    out: JSONObject = {}
    for k, v in mapping.items():
        out[k] = v if v is None or isinstance(v, str | int | float | bool | list | dict) else str(v)
    return out


def definition_select(process_id: str, version: int | None) -> sa.Select[Any]:
    """A version of a process; ``None`` version: its latest published one."""
    stmt = sa.select(definitions).where(definitions.c.process_id == process_id)
    if version is None:
        return (
            stmt.where(definitions.c.status == "published")
            .order_by(definitions.c.version.desc())
            .limit(1)
        )
    return stmt.where(definitions.c.version == version)


async def fetch_definition(
    conn: AsyncConnection, process_id: str, version: int | None
) -> StoredDefinition | None:
    r = (await conn.execute(definition_select(process_id, version))).first()
    return None if r is None else definition(r)


class SeenDefinitions:
    """The definitions one transaction looked up, over the versions the process already
    decoded (immutable once stored: one decode per process, not one per batch)."""

    def __init__(self, versions: dict[tuple[str, int], StoredDefinition]) -> None:
        self._versions = versions
        self._found: dict[tuple[str, int | None], StoredDefinition | None] = {}

    async def get(
        self,
        process_id: str,
        version: int | None,
        fetch: Callable[[], Awaitable[StoredDefinition | None]],
    ) -> StoredDefinition | None:
        if version is not None and (process_id, version) in self._versions:
            return self._versions[(process_id, version)]
        key = (process_id, version)
        if key not in self._found:
            found = await fetch()
            self._found[key] = found
            if found is not None:
                self._versions[(process_id, found.version)] = found
        return self._found[key]


TASK_STATE = (
    "status",
    "attempt",
    "available_at",
    "output",
    "error",
    "ports",
    "handled",
    "detail",
    "usage",
    "updated_at",
)
TASK_LEASE = ("leased_to", "lease_token", "lease_expires_at")
INSTANCE_STATE = ("status", "outputs", "error", "updated_at", "seq")


def instance_values(row: InstanceRow) -> dict[str, object]:
    return {
        "id": row.id,
        "process_id": row.process_id,
        "version": row.version,
        "status": row.status,
        "inputs": row.inputs,
        "outputs": row.outputs,
        "error": row.error,
        "parent_instance_id": row.parent_instance_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "seq": row.seq,
        "workspace_id": row.workspace_id,
        "trace_context": row.trace_context,
    }


def task_values(instance_id: str, t: Task) -> dict[str, object]:
    ports: JSON = list(t.ports)
    return {
        "id": t.id,
        "instance_id": instance_id,
        "scope": t.scope,
        "node_id": t.node_id,
        "node_type": t.node_type,
        "status": t.status.value,
        "attempt": t.attempt,
        "available_at": t.available_at,
        "output": t.output,
        "error": t.error,
        "ports": ports,
        "handled": t.handled,
        "detail": t.detail,
        "usage": t.usage or None,
        "leased_to": t.leased_to,
        "lease_token": t.lease_token,
        "lease_expires_at": t.lease_expires_at,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def event_values(changes: Changes) -> list[dict[str, object]]:
    return [
        {
            "instance_id": e.instance_id,
            "seq": seq,
            "event_id": e.event_id,
            "type": e.type_name,
            "data": e.data(),
            "occurred_at": e.occurred_at,
        }
        for seq, e in changes.events
    ]


def timer_values(t: Timer) -> dict[str, object]:
    return {
        "id": t.id,
        "instance_id": t.instance_id,
        "task_id": t.task_id,
        "kind": t.kind,
        "fire_at": t.fire_at,
        "claimed_until": None,
        "claimed_by": None,
    }


def _update(table: sa.Table, columns: tuple[str, ...]) -> sa.Update:
    return (
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values({c: sa.bindparam(f"b_{c}") for c in columns})
    )


def _bind(values: dict[str, object], columns: tuple[str, ...]) -> dict[str, object]:
    out = {f"b_{c}": values[c] for c in columns}
    out["b_id"] = values["id"]
    return out


async def save(conn: AsyncConnection, changes: Changes, codec: PayloadCodec = PLAIN) -> None:
    """Write one batch through SQLAlchemy (PostgreSQL, MySQL), one executemany per kind of
    row; payloads in their stored form, what the codec's stages need done first (blob
    writes) done before any row is written."""
    enc = RowEncoder(codec, changes)
    keys = {iid: key for key, iid in changes.idempotency_keys}
    new_instances = [
        enc.instance({**instance_values(r), "idempotency_key": keys.get(r.id)})
        for r in changes.new_instances
    ]
    updated_instances = [enc.instance(instance_values(r)) for r in changes.updated_instances]
    new_tasks = [enc.task(task_values(i, t)) for i, t in changes.new_tasks]
    with_lease = [enc.task(task_values(i, t)) for i, t in changes.updated_tasks if t.lease_changed]
    without = [enc.task(task_values(i, t)) for i, t in changes.updated_tasks if not t.lease_changed]
    new_events = [enc.event(v) for v in event_values(changes)]
    await enc.batch.flush()
    if new_instances:
        await conn.execute(instances.insert(), new_instances)
    if updated_instances:
        await conn.execute(
            _update(instances, INSTANCE_STATE),
            [_bind(v, INSTANCE_STATE) for v in updated_instances],
        )
    if new_tasks:
        await conn.execute(tasks.insert(), new_tasks)
    if with_lease:
        cols = TASK_STATE + TASK_LEASE
        await conn.execute(_update(tasks, cols), [_bind(v, cols) for v in with_lease])
    if without:
        await conn.execute(_update(tasks, TASK_STATE), [_bind(v, TASK_STATE) for v in without])
    if new_events:
        await conn.execute(events.insert(), new_events)
        await conn.execute(feed.insert(), feed_values(changes))
    if changes.new_timers:
        await conn.execute(timers.insert(), [timer_values(t) for t in changes.new_timers])
    if changes.deleted_timers:
        await conn.execute(
            timers.delete().where(timers.c.id == sa.bindparam("b_id")),
            [{"b_id": t} for t in changes.deleted_timers],
        )
    if changes.outbox:
        await conn.execute(outbox.insert(), outbox_values(changes))


def outbox_values(changes: Changes) -> list[dict[str, object]]:
    return [
        {
            "instance_id": r.instance_id,
            "seq": r.seq,
            "type": r.type,
            "data": r.data,
            "created_at": r.created_at,
        }
        for r in changes.outbox
    ]


def feed_values(changes: Changes) -> list[dict[str, object]]:
    """One feed row per instance per commit: the seq range its events took. The feed's
    autoincrement id orders commits for the live streams (SSE resume, WebSocket, GraphQL)."""
    ranges: dict[str, list[int]] = {}
    at = 0.0
    for seq, e in changes.events:
        r = ranges.get(e.instance_id)
        if r is None:
            ranges[e.instance_id] = [seq, seq]
        else:
            r[0], r[1] = min(r[0], seq), max(r[1], seq)
        at = e.occurred_at
    return [
        {"instance_id": iid, "first_seq": lo, "last_seq": hi, "created_at": at}
        for iid, (lo, hi) in ranges.items()
    ]
