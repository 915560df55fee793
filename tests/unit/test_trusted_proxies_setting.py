"""``trusted_proxies``: IP addresses and CIDR networks only (uvicorn would take anything else as
a literal that never matches, and ``*`` as "trust every peer"), and the uvicorn options made
from it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cadenza.bootstrap.serve import proxy_options
from cadenza.settings import Settings


def test_addresses_and_networks_are_read_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CADENZA_TRUSTED_PROXIES", '["172.28.0.10", "10.0.0.0/8", "FD00::/8", "::1"]'
    )
    assert Settings().trusted_proxies == ["172.28.0.10", "10.0.0.0/8", "fd00::/8", "::1"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("*", "not an IP address or CIDR network"),
        ("haproxy", "not an IP address or CIDR network"),
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "not an IP address or CIDR network"),
        ("", "not an IP address or CIDR network"),
    ],
)
def test_anything_but_an_address_or_network_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        Settings(trusted_proxies=[value])
    assert caught.value.errors()[0]["loc"] == ("trusted_proxies", 0)


def test_the_default_trusts_no_proxy_and_turns_the_header_middleware_off() -> None:
    assert Settings().trusted_proxies == []
    assert proxy_options(Settings()) == {"proxy_headers": False, "forwarded_allow_ips": []}


def test_trusted_proxies_turn_uvicorns_proxy_headers_on_for_exactly_them() -> None:
    settings = Settings(trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    assert proxy_options(settings) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8"],
    }
