"""PII redaction wiring: the rules in the database, the cache every process reads (kept fresh
by a background refresh and by the invalidation bus), the codec on the SQL store's write and
read paths, the log pipeline's processor, and the use cases the API serves.

``memory://`` gets the rules and the API's use cases but no codec: nothing it holds is ever
written anywhere (``docs/pii.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from cadenza.application.invalidation import Announcer
from cadenza.application.pii_codec import SealStage
from cadenza.application.pii_rules import KeyNeeded, Redaction, RedactionStore, RulesCache
from cadenza.application.ports import Clock
from cadenza.application.secrets import Cipher, SecretsUnavailable
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.observability.log_redaction import release_rules, use_rules
from cadenza.infrastructure.redaction_memory import MemoryRedactionStore
from cadenza.infrastructure.sql.redaction import SqlRedactionStore
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 5.0  # closing waits this long for a reload under way, then cancels it


@dataclass
class RedactionParts:
    service: Redaction  # the API's use cases
    rules: RulesCache
    stage: SealStage | None  # on the store's payload codec; None with memory://
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Load the rules before anything is written, then keep them fresh (the payload
        codec and the log pipeline read them without waiting for the database)."""
        if self._task is None:
            await self.rules.fresh()
            self._task = asyncio.create_task(self.rules.keep_fresh(), name="redaction-rules")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self.rules.stop()  # let a reload under way finish: its connection goes back
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        release_rules(self.rules)


def _key_check(cipher: Cipher) -> None:
    try:
        cipher.current_key_id()
    except SecretsUnavailable as exc:
        raise KeyNeeded(
            f"redaction seals the original values with the secrets key, and there is none: {exc}"
        ) from exc


def build_redaction(
    settings: Settings,
    store: SqlStore | MemoryStore,
    clock: Clock,
    cipher: Cipher,
    announcer: Announcer | None,
) -> RedactionParts:
    rules_store: RedactionStore = (
        MemoryRedactionStore() if isinstance(store, MemoryStore) else SqlRedactionStore(store)
    )
    cache = RulesCache(rules_store, clock, settings.redaction_refresh_s)
    stage = None
    if isinstance(store, SqlStore):  # first: it must see the real value, before offload
        stage = SealStage(cache, cipher)
        store.codec = store.codec.with_stage(stage, first=True)
    use_rules(cache)

    async def announce(workspace_id: str) -> None:
        if announcer is not None:
            await announcer.redaction_changed(workspace_id)

    service = Redaction(rules_store, cache, clock, lambda: _key_check(cipher), announce)
    return RedactionParts(service, cache, stage)
