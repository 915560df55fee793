"""Workspace quotas wiring (docs/quotas.md): the store's counters, the settings' system-wide
defaults, the limits cache's TTL and the usage batch's flush interval."""

from __future__ import annotations

from cadenza.application.ports import Clock
from cadenza.application.ports_quotas import QuotaLimits
from cadenza.application.quotas import Quotas
from cadenza.bootstrap.store import quota_store
from cadenza.infrastructure.memory_store import MemoryStore
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.settings import Settings


def build_quotas(settings: Settings, store: SqlStore | MemoryStore, clock: Clock) -> Quotas:
    """Workspace quotas over the store, with the settings' system-wide defaults."""
    defaults = QuotaLimits(
        max_running=settings.quota_max_running,
        starts_per_minute=settings.quota_starts_per_minute,
        tokens_per_day=settings.quota_tokens_per_day,
        tokens_per_month=settings.quota_tokens_per_month,
        cost_per_day=settings.quota_cost_per_day,
        cost_per_month=settings.quota_cost_per_month,
    )
    return Quotas(
        quota_store(store),
        clock,
        defaults,
        settings.quota_turn_reserve_tokens,
        limits_ttl_s=settings.quota_limits_ttl_s,
        usage_flush_s=settings.quota_usage_flush_s,
    )
