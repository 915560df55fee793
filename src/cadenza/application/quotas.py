"""Workspace quotas, enforced before work is taken: a start past the running-instances or
starts-per-minute limit is refused, and a model turn that would cross a token or cost budget
does not start. The counters live in the store (``QuotaStore``), so the limits hold across
processes; docs/quotas.md gives the precision of each.

With no limit set a start and a model turn touch the store not at all: the effective limits
are cached (``quota_cache.LimitsCache``, dropped on change through the bus, with a TTL) and the
usage of turns without a budget is summed and written in batches (``quota_cache.UsageBatch``).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from cadenza.application.ports import Clock, IdGenerator
from cadenza.application.ports_ai import ChatRequest
from cadenza.application.ports_nodes import NodeFailure
from cadenza.application.ports_quotas import (
    BudgetLimits,
    QuotaLimits,
    QuotaStore,
    Reservation,
    Spend,
)
from cadenza.application.providers import Price
from cadenza.application.quota_cache import LimitsCache, UsageBatch
from cadenza.domain.json import JSONObject

WINDOW_S = 60  # starts per minute count in fixed UTC minutes
# a start admitted under a running limit counts as running until its instance is committed,
# at most this long (a process that died in between frees the place after it)
START_HOLD_S = 60.0


class QuotaExceeded(Exception):
    """A start or a model turn refused by a workspace quota; the message names the limit, its
    value and the usage. ``retry_after_s`` when waiting helps (the starts-per-minute window)."""

    def __init__(self, kind: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # running | starts | tokens | cost
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class QuotaUsage:
    """Usage against limits now, as ``GET /workspaces/{id}/usage`` shows it."""

    limits: QuotaLimits
    running: int
    starts_this_minute: int
    day: str
    month: str
    today: Spend
    this_month: Spend


def retry_after(wait_s: float) -> int:
    """Whole seconds to wait, rounded up (the ``Retry-After`` value), at least 1."""
    return max(1, math.ceil(wait_s))


def _day_month(now: float) -> tuple[str, str]:
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    return day, day[:7]


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class Quotas:
    """Limits per workspace over ``defaults`` (settings), checked against the store."""

    def __init__(
        self,
        store: QuotaStore,
        clock: Clock,
        defaults: QuotaLimits,
        reserve_tokens: int = 1024,
        new_id: IdGenerator = lambda: uuid.uuid4().hex,
        *,
        limits_ttl_s: float = 0.0,
        usage_flush_s: float = 0.0,
    ) -> None:
        self.store = store
        self.clock = clock  # public: tests move time
        self.defaults = defaults
        self.reserve_tokens = reserve_tokens  # a turn without max_tokens reserves this many
        self.on_refusal: Callable[[str], None] = lambda kind: None  # metrics
        self.announce: Callable[[str], Awaitable[None]] = _nobody  # other processes forget
        self._new_id = new_id
        # the clock read through ``self.clock``: tests replace it
        self.cache = LimitsCache(self._effective, lambda: self.clock.now(), limits_ttl_s)
        self.unbudgeted = UsageBatch(store.add, usage_flush_s)

    async def limits(self, workspace_id: str) -> QuotaLimits:
        """The workspace's effective limits: its own, each unset one from the defaults
        (cached for ``limits_ttl_s``; a change drops the entry in every process)."""
        return await self.cache.get(workspace_id)

    async def _effective(self, workspace_id: str) -> QuotaLimits:
        own = await self.store.limits(workspace_id)
        return self.defaults if own is None else own.over(self.defaults)

    async def set_limits(self, workspace_id: str, limits: QuotaLimits) -> None:
        """Store the workspace's own limits; this process applies them from its next start
        or turn, the others once the bus message reaches them (at the latest after the TTL)."""
        await self.store.set_limits(workspace_id, limits, self.clock.now())
        self.cache.forget(workspace_id)
        await self.announce(workspace_id)

    def forget(self, workspace_id: str) -> None:
        """A ``QuotasChanged`` message: read the workspace's limits again."""
        self.cache.forget(workspace_id)

    def forget_all(self) -> None:
        self.cache.forget_all()

    async def aclose(self) -> None:
        """Write the batched usage (at shutdown)."""
        await self.unbudgeted.aclose()

    async def usage(self, workspace_id: str) -> QuotaUsage:
        await self.unbudgeted.flush()  # this process's sums; other processes' within flush_s
        now = self.clock.now()
        day, month = _day_month(now)
        today, this_month = await self.store.spent(workspace_id, day, month)
        return QuotaUsage(
            await self.limits(workspace_id),
            await self.store.running(workspace_id),
            await self.store.starts(workspace_id, int(now // WINDOW_S)),
            day,
            month,
            today,
            this_month,
        )

    # ---- starts ------------------------------------------------------------------------------
    @asynccontextmanager
    async def admit_start(self, workspace_id: str) -> AsyncIterator[None]:
        """Around one start: refuse it (QuotaExceeded) past the running or the per-minute
        limit. Under a running limit the start holds a place, counted with the running
        instances by every process, from its admission until its instance is committed (the
        end of this block), so concurrent starts in any processes cannot overshoot."""
        limits = await self.limits(workspace_id)
        if limits.max_running is None:
            await self._take_start(workspace_id, limits)
            yield
            return
        now = self.clock.now()
        hold = self._new_id()
        count = await self.store.admit_running(
            workspace_id, limits.max_running, hold, now + START_HOLD_S, now
        )
        if count is not None:
            self._refuse(
                "running",
                f"quota exceeded: workspace {workspace_id!r} has {count} instance(s) "
                f"running; its limit (max_running) is {limits.max_running}",
            )
        try:
            await self._take_start(workspace_id, limits)
            yield
        finally:
            await asyncio.shield(self.store.release_running(workspace_id, hold))

    async def _take_start(self, workspace_id: str, limits: QuotaLimits) -> None:
        limit = limits.starts_per_minute
        if limit is None:
            return
        now = self.clock.now()
        window = int(now // WINDOW_S)
        if await self.store.take_start(workspace_id, window, limit) is None:
            wait = (window + 1) * WINDOW_S - now
            self._refuse(
                "starts",
                f"quota exceeded: workspace {workspace_id!r} started {limit} instance(s) "
                f"this minute; its limit (starts_per_minute) is {limit}; retry in "
                f"{retry_after(wait)} s",
                retry_after_s=wait,
            )

    def _refuse(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        self.on_refusal(kind)
        raise QuotaExceeded(kind, message, retry_after_s=retry_after_s)

    # ---- model turns -------------------------------------------------------------------------
    async def before_turn(
        self, workspace_id: str, request: ChatRequest, price: Price
    ) -> Reservation | None:
        """Reserve the turn's tokens (its ``max_tokens``, else ``reserve_tokens``) and their
        cost at the higher of its model's two prices against the workspace's budgets; a turn
        that does not fit fails its task (NodeFailure, not retryable) before any call."""
        limits = await self.limits(workspace_id)
        if not limits.budgets_tokens:
            return None
        tokens = request.max_tokens or self.reserve_tokens
        cost = round(tokens * max(price.prompt, price.completion) / 1000, 8)
        day, month = _day_month(self.clock.now())
        r = Reservation(workspace_id, day, month, tokens, cost)
        within = BudgetLimits(
            limits.tokens_per_day,
            limits.tokens_per_month,
            limits.cost_per_day,
            limits.cost_per_month,
        )
        if await self.store.reserve(r, within):
            return r
        kind, message = self._why(await self.store.spent(workspace_id, day, month), r, limits)
        self.on_refusal(kind)
        raise NodeFailure(message, retryable=False)

    @staticmethod
    def _why(spent: tuple[Spend, Spend], r: Reservation, limits: QuotaLimits) -> tuple[str, str]:
        today, month = spent
        checks: list[tuple[str, str, float | None, float, float]] = [
            ("tokens", "tokens_per_day", limits.tokens_per_day, today.tokens, r.tokens),
            ("tokens", "tokens_per_month", limits.tokens_per_month, month.tokens, r.tokens),
            ("cost", "cost_per_day", limits.cost_per_day, today.cost, r.cost),
            ("cost", "cost_per_month", limits.cost_per_month, month.cost, r.cost),
        ]
        for kind, name, limit, used, more in checks:
            if limit is not None and used + more > limit:
                return kind, (
                    f"quota exceeded: workspace {r.workspace_id!r} has used {_num(used)} of its "
                    f"{name} limit {_num(limit)}; this model turn reserves up to {_num(more)} "
                    "more, so it was not started"
                )
        # the spend moved between the reservation and this read: still refused, say so
        return "tokens", f"quota exceeded: workspace {r.workspace_id!r} has no budget left"

    async def after_turn(
        self, workspace_id: str, reservation: Reservation | None, usage: JSONObject
    ) -> None:
        """Count the turn's real tokens and cost for its workspace's day and month, giving
        back what its reservation held."""
        tokens, cost = _tokens_cost(usage)
        if reservation is None:  # no budget: summed and written in batches
            if tokens or cost:
                day, month = _day_month(self.clock.now())
                await self.unbudgeted.add(Reservation(workspace_id, day, month, tokens, cost))
            return
        tokens -= reservation.tokens
        cost -= reservation.cost
        if tokens or cost:
            r = Reservation(
                workspace_id, reservation.day, reservation.month, tokens, round(cost, 8)
            )
            await self.store.add(r)

    async def release(self, reservation: Reservation) -> None:
        """Give a reservation back whole (the call failed before it spent anything)."""
        await self.store.add(
            Reservation(
                reservation.workspace_id,
                reservation.day,
                reservation.month,
                -reservation.tokens,
                -reservation.cost,
            )
        )


async def _nobody(workspace_id: str) -> None:
    return None


def _tokens_cost(usage: JSONObject) -> tuple[int, float]:
    tokens = 0
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            tokens += value
    cost = usage.get("cost")
    return tokens, float(cost) if isinstance(cost, int | float) else 0.0
