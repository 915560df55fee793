"""Faults injected into the engine's group commit, between the batch's save and its commit.

``BatchFaults.install`` wraps a ``SqlStore``'s engine transactions: after a batch saved its
rows (``Changes``), ``fail`` may name an exception, raised there, as a failure between the
journal write and the commit would be (the ``after-journal-before-commit`` crash point, in
process). The transaction then rolls back, the engine isolates or retries the batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from cadenza.application.audit_ports import AuditEntry
from cadenza.application.ports import Changes, InstanceHeader, LeaseInfo, StoredDefinition, Timer
from cadenza.application.ports import Transaction as TransactionPort
from cadenza.domain.events import Event
from cadenza.infrastructure.sql.store import SqlStore


@dataclass
class BatchFaults:
    fail: Callable[[Changes], BaseException | None] = lambda changes: None
    batches: list[list[AuditEntry]] = field(default_factory=list)  # audit rows of each save

    def install(self, store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
        original = store.transaction

        @asynccontextmanager
        async def transaction() -> AsyncIterator[TransactionPort]:
            async with original() as tx:
                yield _Faulty(tx, self)

        monkeypatch.setattr(store, "transaction", transaction)

    def when_audited(
        self, accept: Callable[[AuditEntry], bool], make: Callable[[], BaseException]
    ) -> None:
        """Fail every batch that carries an audit row ``accept`` takes."""
        self.fail = lambda changes: make() if any(map(accept, changes.audit)) else None


class _Faulty:
    """A transaction whose ``save`` writes, then raises what ``BatchFaults.fail`` says."""

    def __init__(self, tx: TransactionPort, faults: BatchFaults) -> None:
        self._tx = tx
        self._faults = faults

    async def save(self, changes: Changes) -> None:
        await self._tx.save(changes)
        self._faults.batches.append(list(changes.audit))
        failure = self._faults.fail(changes)
        if failure is not None:
            raise failure

    async def lock_instances(self, ids: Sequence[str]) -> dict[str, InstanceHeader]:
        return await self._tx.lock_instances(ids)

    async def events_after(self, instance_id: str, seq: int) -> list[Event]:
        return await self._tx.events_after(instance_id, seq)

    async def lock_tasks(self, task_ids: Sequence[str]) -> dict[str, LeaseInfo]:
        return await self._tx.lock_tasks(task_ids)

    async def definition(self, process_id: str, version: int | None) -> StoredDefinition | None:
        return await self._tx.definition(process_id, version)

    async def instance_by_idempotency_key(self, key: str) -> str | None:
        return await self._tx.instance_by_idempotency_key(key)

    async def timers_for(self, instance_id: str) -> list[Timer]:
        return await self._tx.timers_for(instance_id)
