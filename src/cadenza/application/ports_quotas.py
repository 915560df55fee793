"""The seam of workspace quotas: limits per workspace, and the counters they are checked
against, kept in the store so every API and worker process sees the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol


@dataclass(frozen=True)
class QuotaLimits:
    """A workspace's limits; ``None`` is "no limit" (or, stored per workspace, "the system
    default"). Costs are in the price table's currency units."""

    max_running: int | None = None  # instances running at once
    starts_per_minute: int | None = None  # starts per UTC minute (a fixed window)
    tokens_per_day: int | None = None  # prompt + completion tokens per UTC day
    tokens_per_month: int | None = None
    cost_per_day: float | None = None
    cost_per_month: float | None = None

    def over(self, defaults: QuotaLimits) -> QuotaLimits:
        """These limits with each unset one taken from ``defaults``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if value is None:
                values[name] = getattr(defaults, name)
        return QuotaLimits(**values)

    @property
    def budgets_tokens(self) -> bool:
        """Whether any token or cost budget is set (model turns need a reservation)."""
        budgets = (self.tokens_per_day, self.tokens_per_month, self.cost_per_day)
        return any(v is not None for v in (*budgets, self.cost_per_month))


LIMIT_NAMES = tuple(f.name for f in fields(QuotaLimits))  # the API's and the table's fields


@dataclass(frozen=True)
class Spend:
    """Tokens and cost spent (reserved included) in one period."""

    tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class Reservation:
    """What a model turn holds against its workspace's budgets until its usage is known."""

    workspace_id: str
    day: str  # YYYY-MM-DD (UTC)
    month: str  # YYYY-MM
    tokens: int
    cost: float


@dataclass(frozen=True)
class BudgetLimits:
    """The budget a reservation must fit in (``None``: that one is not limited)."""

    tokens_per_day: int | None
    tokens_per_month: int | None
    cost_per_day: float | None
    cost_per_month: float | None


class QuotaStore(Protocol):
    """Limits and counters per workspace. Every write is one transaction; the conditional ones
    are atomic across processes (the database serializes them on the counter's row)."""

    async def limits(self, workspace_id: str) -> QuotaLimits | None:
        """The workspace's own limits (None: none stored)."""
        ...

    async def set_limits(self, workspace_id: str, limits: QuotaLimits, now: float) -> None: ...

    async def running(self, workspace_id: str) -> int:
        """Instances of the workspace whose status is ``running`` now."""
        ...

    async def admit_running(
        self, workspace_id: str, limit: int, hold: str, until: float, now: float
    ) -> int | None:
        """Serialized per workspace across processes: count its running instances plus the
        starts admitted and not released yet (holds with ``until`` after ``now``); below
        ``limit``, add the hold ``hold`` (until ``until``) and return None, else return the
        count (refused)."""
        ...

    async def release_running(self, workspace_id: str, hold: str) -> None:
        """End a hold: its start committed its instance (or failed)."""
        ...

    async def take_start(self, workspace_id: str, window: int, limit: int | None) -> int | None:
        """Count one start in the minute ``window`` if fewer than ``limit`` were counted
        there (no limit: always); the new count, or None when the window is full."""
        ...

    async def starts(self, workspace_id: str, window: int) -> int: ...

    async def reserve(self, r: Reservation, within: BudgetLimits) -> bool:
        """Add ``r`` to the day's and the month's spend if both stay within ``within``; False
        (and nothing added) when one would not."""
        ...

    async def add(self, r: Reservation) -> None:
        """Add ``r`` (negative values give back) to the day's and the month's spend."""
        ...

    async def spent(self, workspace_id: str, day: str, month: str) -> tuple[Spend, Spend]:
        """The spend of the day and of the month."""
        ...
