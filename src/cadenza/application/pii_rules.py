"""Redaction rules per workspace: the store port, the API's use cases, and the cache every
process reads on its write path and in its log pipeline.

A workspace's rules are read where payloads are stored and logs are written, which must not
wait for the database: ``RulesCache`` keeps every workspace's rules (the table holds a row only
for workspaces that set them) and a compiled ``Scanner`` per enabled workspace, reloaded when
an invalidation message arrives (``application/invalidation.py``, ``RedactionChanged``) and at
least every ``refresh_s`` seconds otherwise (a lost message costs at most that long).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from cadenza.application.identity import Permission, Principal
from cadenza.application.pii_detectors import Scanner
from cadenza.application.ports import Clock
from cadenza.domain.pii import BUILTIN, RedactionRules, RulesInvalid

log = logging.getLogger(__name__)
# the workspace of the task running in this context (set by the worker): log lines written
# meanwhile follow its rules, custom ones included
LOG_WORKSPACE: ContextVar[str | None] = ContextVar("cadenza_log_workspace", default=None)


class KeyNeeded(Exception):
    """Redaction cannot be turned on: no key to seal the original values (409)."""


@dataclass(frozen=True)
class StoredRules:
    workspace_id: str
    rules: RedactionRules
    updated_at: float
    updated_by: str  # user:ID or key:ID


class RedactionStore(Protocol):
    """Rules per workspace (adapters: ``infrastructure.sql.redaction``, ``redaction_memory``)."""

    async def rules(self, workspace_id: str) -> StoredRules | None: ...

    async def all_rules(self) -> list[StoredRules]: ...

    async def put_rules(self, stored: StoredRules) -> None:
        """Insert or replace, with the pending audit row in the same transaction."""
        ...


class RulesCache:
    """Every workspace's rules and scanners, as a snapshot read without waiting."""

    def __init__(self, store: RedactionStore, clock: Clock, refresh_s: float) -> None:
        self._store = store
        self._clock = clock
        self._refresh_s = refresh_s
        self._loaded_at: float | None = None
        self._scanners: dict[str, Scanner] = {}
        self._compiled: dict[str, tuple[RedactionRules, Scanner]] = {}
        self._builtin: Scanner | None = None
        self._stale = asyncio.Event()  # set by ``invalidate``: the refresher reloads now
        self._stopping = False

    @property
    def any_enabled(self) -> bool:
        return bool(self._scanners)

    def scanner(self, workspace_id: str) -> Scanner | None:
        """The workspace's scanner, or None when it does not redact."""
        return self._scanners.get(workspace_id)

    def builtin(self) -> Scanner | None:
        """Every built-in detector, when any workspace redacts (for logs without a workspace)."""
        return self._builtin

    def invalidate(self) -> None:
        self._loaded_at = None
        self._stale.set()

    async def keep_fresh(self) -> None:
        """Reload every ``refresh_s``, and at once when invalidated, until ``stop``. The
        write path never waits for the database: it reads what this loop loaded."""
        while not self._stopping:
            self._stale.clear()
            await self.fresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stale.wait(), self._refresh_s)

    def stop(self) -> None:
        """End ``keep_fresh`` after the reload under way (a query is not cut in the middle)."""
        self._stopping = True
        self._stale.set()

    async def fresh(self) -> None:
        """Reload when invalidated or older than ``refresh_s``; a failed reload keeps the
        rules held (logged): the write path must not fail because the rules are unreadable."""
        now = self._clock.now()
        if self._loaded_at is not None and now - self._loaded_at < self._refresh_s:
            return
        try:
            stored = await self._store.all_rules()
        except Exception as exc:  # the store is down: the next write tries again
            log.warning("redaction rules not reloaded: %s", exc)
            return
        self.load(stored)
        self._loaded_at = now

    def load(self, stored: list[StoredRules]) -> None:
        """Take these rules; a workspace whose rules did not change keeps its compiled
        scanner (a reload every ``refresh_s`` compiles nothing new)."""
        scanners: dict[str, Scanner] = {}
        compiled: dict[str, tuple[RedactionRules, Scanner]] = {}
        for s in stored:
            if not s.rules.enabled:
                continue
            known = self._compiled.get(s.workspace_id)
            if known is not None and known[0] == s.rules:
                scanner = known[1]
            else:
                try:
                    scanner = Scanner.of(s.rules)
                except RulesInvalid as exc:  # stored by an older version: built-ins only
                    log.warning("redaction rules of %s: %s", s.workspace_id, exc)
                    scanner = Scanner(s.rules)
            scanners[s.workspace_id] = scanner
            compiled[s.workspace_id] = (s.rules, scanner)
        self._scanners, self._compiled = scanners, compiled
        if not scanners:
            self._builtin = None
        elif self._builtin is None:
            self._builtin = Scanner(RedactionRules(True, frozenset(BUILTIN)))


@dataclass(frozen=True)
class RulesView:
    workspace_id: str
    rules: RedactionRules
    updated_at: float | None = None
    updated_by: str | None = None


class Redaction:
    """The API's use cases: read and replace a workspace's rules (its admins). The route
    checked that ``p`` may act on ``workspace_id``."""

    def __init__(
        self,
        store: RedactionStore,
        cache: RulesCache,
        clock: Clock,
        key_check: Callable[[], None],
        announce: Callable[[str], Awaitable[None]],  # tells the other processes
    ) -> None:
        self.store = store
        self._cache = cache
        self._clock = clock
        self._key_check = key_check  # raises KeyNeeded when nothing can seal
        self._announce = announce

    async def view(self, p: Principal, workspace_id: str) -> RulesView:
        p.require(Permission.MANAGE)
        own = await self.store.rules(workspace_id)
        if own is None:
            return RulesView(workspace_id, RedactionRules())
        return RulesView(workspace_id, own.rules, own.updated_at, own.updated_by)

    async def set(self, p: Principal, workspace_id: str, rules: RedactionRules) -> RulesView:
        """Replace the rules. Raises RulesInvalid (422), KeyNeeded (409)."""
        p.require(Permission.MANAGE)
        Scanner.of(rules)  # every custom pattern compiles on RE2
        if rules.enabled:
            self._key_check()
        now = self._clock.now()
        await self.store.put_rules(StoredRules(workspace_id, rules, now, p.subject))
        self._cache.invalidate()
        await self._cache.fresh()  # this process applies the rules from its next write on
        await self._announce(workspace_id)
        return RulesView(workspace_id, rules, now, p.subject)
