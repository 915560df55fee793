"""A provider's connection pool is bounded by default, as docs/providers.md says."""

from __future__ import annotations

from cadenza.infrastructure.llm.sdk import DEFAULT_POOL_SIZE
from cadenza.settings import ProviderSettings


def test_a_provider_pool_is_bounded_unless_configured_otherwise() -> None:
    assert ProviderSettings(name="p").pool_size == DEFAULT_POOL_SIZE == 100
    assert ProviderSettings(name="p", pool_size=None).pool_size is None
