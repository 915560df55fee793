"""A provider's connection pool is bounded by default, as docs/providers.md says."""

from __future__ import annotations

from openai._vendor.httpx_aiohttp.transport import AiohttpTransport

from cadenza.bootstrap import build_providers
from cadenza.infrastructure.llm.anthropic import AnthropicProvider
from cadenza.infrastructure.llm.openai_compatible import OpenAICompatibleProvider
from cadenza.infrastructure.llm.resilient import ResilientProvider
from cadenza.infrastructure.llm.sdk import DEFAULT_POOL_SIZE
from cadenza.settings import ProviderSettings, Settings


def test_a_provider_pool_is_bounded_unless_configured_otherwise() -> None:
    assert ProviderSettings(name="p").pool_size == DEFAULT_POOL_SIZE == 100
    assert ProviderSettings(name="p", pool_size=None).pool_size is None


async def test_each_sdk_provider_built_from_settings_opens_at_most_pool_size_connections() -> None:
    settings = Settings(
        providers=[
            ProviderSettings(name="oa", kind="openai", base_url="http://127.0.0.1:9/v1"),
            ProviderSettings(name="an", kind="anthropic", base_url="http://127.0.0.1:9"),
            ProviderSettings(name="few", kind="openai", base_url="http://x.invalid", pool_size=7),
        ]
    )
    providers = build_providers(settings)
    try:
        limits = {}
        for name in ("oa", "an", "few"):
            resilient = providers.providers[name]
            assert isinstance(resilient, ResilientProvider)
            inner = resilient.inner
            assert isinstance(inner, OpenAICompatibleProvider | AnthropicProvider)
            # the SDK's aiohttp transport builds its connector from these limits
            transport = inner._http._transport
            assert isinstance(transport, AiohttpTransport)
            session = transport.get_client()
            try:
                limits[name] = session.connector.limit if session.connector else None
            finally:
                await session.close()
        assert limits == {"oa": DEFAULT_POOL_SIZE, "an": DEFAULT_POOL_SIZE, "few": 7}
    finally:
        await providers.aclose()
