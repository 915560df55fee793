"""``MemoryQuotaStore``: quota limits and counters in this process (``memory://``, tests): the
reference for ``SqlQuotaStore``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cadenza.application.ports_quotas import BudgetLimits, QuotaLimits, Reservation, Spend


class MemoryQuotaStore:
    def __init__(self, running: Callable[[str], Awaitable[int]]) -> None:
        self._running = running  # instances running in a workspace, from the store beside it
        self._limits: dict[str, QuotaLimits] = {}
        self._starts: dict[tuple[str, int], int] = {}
        self._spend: dict[tuple[str, str], Spend] = {}
        self._holds: dict[str, dict[str, float]] = {}  # workspace -> hold -> until

    async def limits(self, workspace_id: str) -> QuotaLimits | None:
        return self._limits.get(workspace_id)

    async def set_limits(self, workspace_id: str, limits: QuotaLimits, now: float) -> None:
        self._limits[workspace_id] = limits

    async def running(self, workspace_id: str) -> int:
        return await self._running(workspace_id)

    async def admit_running(
        self, workspace_id: str, limit: int, hold: str, until: float, now: float
    ) -> int | None:
        holds = self._holds.setdefault(workspace_id, {})
        for name in [h for h, end in holds.items() if end <= now]:
            del holds[name]
        count = await self._running(workspace_id) + len(holds)
        if count >= limit:
            return count
        holds[hold] = until
        return None

    async def release_running(self, workspace_id: str, hold: str) -> None:
        self._holds.get(workspace_id, {}).pop(hold, None)

    async def starts(self, workspace_id: str, window: int) -> int:
        return self._starts.get((workspace_id, window), 0)

    async def take_start(self, workspace_id: str, window: int, limit: int | None) -> int | None:
        count = self._starts.get((workspace_id, window), 0)
        if limit is not None and count >= limit:
            return None
        self._starts[(workspace_id, window)] = count + 1
        return count + 1

    async def spent(self, workspace_id: str, day: str, month: str) -> tuple[Spend, Spend]:
        return self._spend.get((workspace_id, day), Spend()), self._spend.get(
            (workspace_id, month), Spend()
        )

    async def reserve(self, r: Reservation, within: BudgetLimits) -> bool:
        today, month = await self.spent(r.workspace_id, r.day, r.month)
        for spend, tokens, cost in (
            (today, within.tokens_per_day, within.cost_per_day),
            (month, within.tokens_per_month, within.cost_per_month),
        ):
            if tokens is not None and spend.tokens + r.tokens > tokens:
                return False
            if cost is not None and spend.cost + r.cost > cost:
                return False
        await self.add(r)
        return True

    async def add(self, r: Reservation) -> None:
        for period in (r.day, r.month):
            old = self._spend.get((r.workspace_id, period), Spend())
            self._spend[(r.workspace_id, period)] = Spend(
                old.tokens + r.tokens, round(old.cost + r.cost, 8)
            )
