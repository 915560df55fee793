"""What keeps quotas off the hot path when none is set (docs/quotas.md, "Cost"):

- ``LimitsCache``: a workspace's effective limits, read once per ``ttl_s`` instead of at
  every start and model turn. A change made through this process drops the entry at once; one
  made through another process arrives as a ``QuotasChanged`` bus message
  (``application.invalidation``), and the TTL bounds how long a lost message (or the memory
  bus, which reaches no other process) can leave an old value in use.
- ``UsageBatch``: the token and cost usage of model turns in workspaces *without* a token or
  cost budget, summed in the process and written once per ``flush_s`` per workspace and
  period, instead of one write transaction per turn. Turns under a budget never go through it:
  their reservation and its settlement stay exact and immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cadenza.application.ports_quotas import QuotaLimits, Reservation

log = logging.getLogger(__name__)
MAX_ENTRIES = 10_000  # workspaces cached at once (beyond: the cache starts over)


class LimitsCache:
    def __init__(
        self, load: Callable[[str], Awaitable[QuotaLimits]], now: Callable[[], float], ttl_s: float
    ) -> None:
        self._load = load
        self._now = now
        self.ttl_s = ttl_s  # 0: no cache, every call reads the store
        self._entries: dict[str, tuple[QuotaLimits, float]] = {}
        self._generation = 0  # bumped by every forget: a read begun before it is not kept

    async def get(self, workspace_id: str) -> QuotaLimits:
        now = self._now()
        hit = self._entries.get(workspace_id)
        if hit is not None and now < hit[1]:
            return hit[0]
        generation = self._generation
        limits = await self._load(workspace_id)
        if self.ttl_s > 0 and generation == self._generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[workspace_id] = (limits, now + self.ttl_s)
        return limits

    def forget(self, workspace_id: str) -> None:
        self._generation += 1
        self._entries.pop(workspace_id, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()


class UsageBatch:
    """Usage summed per (workspace, day, month) and written by one task ``flush_s`` after the
    first unwritten turn; ``flush_s`` 0 writes each turn at once. A failed write keeps the sums
    for the next flush; ``aclose`` writes what is left (a killed process loses at most
    ``flush_s`` of the usage of workspaces without budgets)."""

    def __init__(
        self,
        write: Callable[[Reservation], Awaitable[None]],
        flush_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._write = write
        self.flush_s = flush_s
        self._sleep = sleep
        self._pending: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def add(self, usage: Reservation) -> None:
        if self.flush_s <= 0:
            await self._write(usage)
            return
        self._keep(usage)
        if self._task is None:
            self._task = asyncio.create_task(self._later(), name="quota-usage-flush")

    def _keep(self, usage: Reservation) -> None:
        key = (usage.workspace_id, usage.day, usage.month)
        tokens, cost = self._pending.get(key, (0, 0.0))
        self._pending[key] = (tokens + usage.tokens, cost + usage.cost)

    async def _later(self) -> None:
        try:
            await self._sleep(self.flush_s)
        finally:
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write every sum now (one transaction per workspace and period)."""
        taken, self._pending = self._pending, {}
        for (workspace_id, day, month), (tokens, cost) in taken.items():
            usage = Reservation(workspace_id, day, month, tokens, round(cost, 8))
            try:
                await self._write(usage)
            except Exception as exc:  # the store away: kept for the next flush
                log.warning("quota usage of workspace %s not written yet: %s", workspace_id, exc)
                self._keep(usage)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
