"""``MemoryStore``: the in-process ``Store``, the reference adapter of the store contract suite.

It has the SQL store's semantics without a database: transactions are serialized (one writer
at a time, as SQLite's ``BEGIN IMMEDIATE``) and atomic (staged writes merge into the tables
only when the ``async with store.transaction()`` block exits normally); duplicate keys raise
``StoreConflict`` as the SQL store's integrity errors do; reads outside a transaction see
committed rows only; every value is copied on the way in and out. For tests, demos and as
the contract's reference: nothing survives the process (``database_url = "memory://"``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from itertools import islice

from cadenza.application.ports import (
    CRASHED,
    RELEASED,
    IdGenerator,
    InstanceRow,
    LeaseInfo,
    OutboxPublish,
    StoredDefinition,
    Timer,
)
from cadenza.domain.events import Event
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.memory_rows import (
    DefinitionRecord,
    Tables,
    TaskRecord,
    find_definition,
)
from cadenza.infrastructure.memory_transaction import MemoryTransaction

MEMORY_URL = "memory://"


class MemoryStore:
    def __init__(self) -> None:
        self._tables = Tables()
        self._writer = asyncio.Lock()
        # timer id -> (claimed until, by whom) (``claim_timers``)
        self._timer_claims: dict[str, tuple[float, str]] = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with self._writer:
            tx = MemoryTransaction(self._tables)
            yield tx
            tx.commit()  # not reached when the block raised: its writes are dropped

    async def close(self) -> None:
        """Nothing to release; the rows stay readable until the store is dropped."""

    async def probe(self) -> None:
        """A write that changes nothing: it waits for the writer's turn, like the SQL one."""
        async with self.transaction():
            pass

    # ---- the outbox ------------------------------------------------------------------------
    async def relay_outbox(self, limit: int, publish: OutboxPublish) -> int | None:
        """Under the writer's turn (one relay at a time, as on SQLite)."""
        async with self._writer:
            outbox = self._tables.outbox
            taken = list(islice(outbox.values(), max(limit, 0)))  # ids grow: id order
            if taken:
                await publish(taken)
            for r in taken:
                outbox.pop(r.id, None)
        return len(taken)

    async def outbox_backlog(self) -> int:
        return len(self._tables.outbox)

    # ---- definitions ---------------------------------------------------------------------
    async def put_definition(self, definition: StoredDefinition) -> StoredDefinition:
        async with self.transaction() as tx:
            versions = tx.definitions_of(definition.process_id)
            for r in versions:
                if r.content_hash == definition.content_hash:
                    return r.value()
            version = max((r.version for r in versions), default=0) + 1
            record = DefinitionRecord.of(definition, version)
            tx.put_definition(record)
        return record.value()

    async def get_definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        found = find_definition(self._tables.definitions, process_id, version)
        return None if found is None else found.value()

    # ---- queue ---------------------------------------------------------------------------
    async def claim(
        self, owner: str, limit: int, now: float, lease_s: float, new_token: IdGenerator
    ) -> list[LeaseInfo]:
        token = new_token()  # one token per claim, taken even when nothing is due (as in SQL)
        async with self.transaction() as tx:
            due = [t for t in tx.live_tasks() if t.status == "scheduled" and t.available_at <= now]
            due.sort(key=lambda t: (t.available_at, t.order))
            leased = [
                replace(
                    t,
                    status="running",
                    leased_to=owner,
                    lease_token=token,
                    lease_expires_at=now + lease_s,
                )
                for t in due[: max(limit, 0)]
            ]
            tx.put_tasks(leased)
        return [t.lease() for t in leased]

    async def renew(self, owner: str, until: float) -> int:
        """Extend every lease ``owner`` holds; ``until=RELEASED`` gives them up (a stop)."""
        return await self._set_expiry(lambda holder: holder == owner, until)

    async def release_previous(self, owner: str, holder: str) -> int:
        def earlier(leased_to: str) -> bool:
            return leased_to != holder and (leased_to == owner or leased_to.startswith(f"{owner}/"))

        async with self._writer:
            claims = self._timer_claims
            for timer_id in [i for i, (_, by) in claims.items() if earlier(by)]:
                del claims[timer_id]
        return await self._set_expiry(earlier, CRASHED, keep=RELEASED)

    async def _set_expiry(
        self, which: Callable[[str], bool], until: float, keep: float | None = None
    ) -> int:
        """Set the expiry of the running tasks ``which`` holder holds, except those whose
        expiry is ``keep`` (a lease a clean stop released stays released)."""
        async with self.transaction() as tx:
            held = [
                replace(t, lease_expires_at=until)
                for t in tx.live_tasks()
                if t.status == "running"
                and t.leased_to is not None
                and which(t.leased_to)
                and (keep is None or t.lease_expires_at != keep)
            ]
            tx.put_tasks(held)
        return len(held)

    async def expired_leases(self, now: float, limit: int) -> list[LeaseInfo]:
        expired = [
            t
            for t in self._live()
            if t.status == "running" and t.lease_expires_at is not None and t.lease_expires_at < now
        ]
        expired.sort(key=lambda t: (t.lease_expires_at or 0.0, t.order))
        return [t.lease() for t in expired[: max(limit, 0)]]

    async def claim_timers(
        self, holder: str, now: float, limit: int, claim_s: float
    ) -> list[Timer]:
        """Under the writer's turn, as the SQL claim under its write lock or row locks."""
        async with self._writer:
            timers, claims = self._tables.timers, self._timer_claims
            for gone in [i for i in claims if i not in timers]:  # fired meanwhile
                del claims[gone]
            due = sorted(
                (t for t in timers.values() if t.fire_at <= now and _ended(claims.get(t.id), now)),
                key=lambda t: (t.fire_at, t.id),
            )[: max(limit, 0)]
            for t in due:
                claims[t.id] = (now + claim_s, holder)
        return due  # Timer is frozen and holds no JSON: no copy needed

    def _live(self) -> list[TaskRecord]:
        return [self._tables.tasks[tid] for tid in self._tables.live]

    # ---- queries -------------------------------------------------------------------------
    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        found = self._tables.instances.get(instance_id)
        return None if found is None else found.value()

    async def list_instances(
        self, limit: int = 100, status: str | None = None
    ) -> list[InstanceRow]:
        rows = [r for r in self._tables.instances.values() if status in (None, r.status)]
        rows.sort(key=lambda r: r.created_at, reverse=True)
        return [r.value() for r in rows[: max(limit, 0)]]

    async def count_instances(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._tables.instances.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    async def queue_depth(self) -> int:
        """Tasks scheduled and not yet leased (the ``cadenza_task_queue_depth`` gauge)."""
        return sum(1 for t in self._live() if t.status == "scheduled")

    async def unfinished_instances(self) -> list[str]:
        return [r.id for r in self._tables.instances.values() if r.status == "running"]

    async def journal(self, instance_id: str) -> list[tuple[int, Event]]:
        by_seq = self._tables.events.get(instance_id, {})
        return [(seq, by_seq[seq].value()) for seq in sorted(by_seq)]

    async def task_rows(self, instance_id: str) -> list[JSONObject]:
        tasks = [self._tables.tasks[tid] for tid in self._tables.by_instance.get(instance_id, [])]
        tasks.sort(key=lambda t: (t.created_at, t.order))
        return [t.row() for t in tasks]


def _ended(claim: tuple[float, str] | None, now: float) -> bool:
    return claim is None or claim[0] <= now
