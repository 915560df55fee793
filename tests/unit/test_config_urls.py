"""The URL policy for provider and MCP server URLs given through the API: the egress guard's
policy with private addresses off, an allow-list to admit some, applied when saved (with DNS)
and again by every process before it builds a client (as written)."""

from __future__ import annotations

import pytest

from cadenza.application.config_model import McpSpec, ProviderSpec
from cadenza.bootstrap.ai import ConfigError, NoServers
from cadenza.bootstrap.config import UrlPolicy, Validator, spec_client
from cadenza.bootstrap.mcp_live import LiveGateway
from cadenza.settings import Settings


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/v1", "loopback"),
        ("http://10.0.0.5/v1", "private"),
        ("http://[::1]/v1", "loopback"),
        ("http://169.254.169.254/latest", "metadata"),
        ("http://metadata.google.internal/", "metadata"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
    ],
)
def test_written_urls_are_judged_before_any_lookup(url: str, why: str) -> None:
    reason = UrlPolicy([]).written(url)
    assert reason is not None
    assert why in reason


def test_the_allow_list_admits_a_listed_private_host_only() -> None:
    policy = UrlPolicy(["127.0.0.1", "10.1.0.0/16"])
    assert policy.written("http://127.0.0.1:8000/v1") is None
    assert policy.written("http://10.1.2.3/v1") is None
    assert policy.written("http://10.2.0.1/v1") is not None
    assert policy.written("http://169.254.169.254/") is not None  # metadata: only if listed


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    reason = await UrlPolicy([]).refusal("http://localhost:9/v1")
    assert reason is not None
    assert "localhost resolves to a refused address" in reason
    assert await UrlPolicy(["127.0.0.1", "::1"]).refusal("http://localhost:9/v1") is None


async def test_a_process_refuses_to_build_a_client_for_a_refused_url() -> None:
    spec = ProviderSpec("p", "openai", "http://10.0.0.5/v1")
    with pytest.raises(ConfigError, match="URL refused"):
        spec_client(spec, UrlPolicy([]))
    live = LiveGateway(NoServers(), Settings(), url_refusal=UrlPolicy([]).written)
    with pytest.raises(ConfigError, match="URL refused"):
        await live.put("m", McpSpec("m", url="http://10.0.0.5/mcp"))
    assert live.servers() == []


def test_live_settings_are_checked_against_their_bounds() -> None:
    validator = Validator(UrlPolicy([]))
    assert validator.setting("mcp_breaker_failures", 3) == (3, None)
    assert validator.setting("mcp_call_timeout_s", "2.5") == (2.5, None)
    _, why = validator.setting("mcp_call_timeout_s", 7200)
    assert why is not None
    _, why = validator.setting("lease_s", 3)
    assert why == "'lease_s' is not a live setting"
