"""The client address behind the deploy artifacts' proxies (``CADENZA_TRUSTED_PROXIES``):
Compose's APIs trust HAProxy's fixed address and nothing else, HAProxy sets the headers they
read, and the Kubernetes ConfigMap trusts private ranges only while the API's NetworkPolicy
lets nothing but the ingress controller's and the monitoring namespaces reach it.

The forwarded address arriving through the real HAProxy config: test_compose_rehearsal.py."""

from __future__ import annotations

import ipaddress
import json

import pytest
from tests.deploy.compose_model import COMPOSE_DIR, cadenza_services, fixed_addresses, load
from tests.deploy.k8s_manifests import Rendered, render_all

from cadenza.settings import Settings

DOC = load()
APIS = [s for s in cadenza_services(DOC) if s.command[0] == "serve"]
HAPROXY_CFG = COMPOSE_DIR / "proxy" / "haproxy.cfg"
INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"


def proxy_service() -> str:
    (name,) = [n for n, s in DOC["services"].items() if str(s["image"]).startswith("haproxy:")]
    return str(name)


def test_compose_apis_trust_the_proxys_fixed_address_only() -> None:
    proxy = proxy_service()
    addresses = {service: address for address, service in fixed_addresses(DOC).items()}
    assert set(addresses) == {proxy}
    address = ipaddress.ip_address(addresses[proxy])
    (pool,) = DOC["networks"]["cadenza"]["ipam"]["config"]
    # inside the fixed subnet, outside the range other containers are given addresses from
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"])
    assert address != next(ipaddress.ip_network(pool["subnet"]).hosts())  # not the gateway
    assert [a.name for a in APIS] == ["cadenza-api-1", "cadenza-api-2"]
    for api in APIS:
        value = api.environment["CADENZA_TRUSTED_PROXIES"]
        assert json.loads(value) == [str(address)], api.name
        assert Settings(trusted_proxies=json.loads(value)).trusted_proxies == [str(address)]


def test_haproxy_appends_the_client_address_and_sets_the_scheme() -> None:
    lines = [line.split("#", 1)[0].strip() for line in HAPROXY_CFG.read_text().splitlines()]
    sections: dict[str, list[str]] = {}
    current = ""
    for line in lines:
        if line.split(" ", 1)[0] in ("global", "defaults", "frontend", "backend", "resolvers"):
            current = line
            sections[current] = []
        elif line:
            sections[current].append(line)
    assert "option forwardfor" in sections["defaults"]
    assert sections["frontend cadenza"][1:3] == [
        "http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "http-request set-header X-Forwarded-Proto http unless { ssl_fc }",
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    return render_all(tmp_path_factory.mktemp("k8s-edge"))


def test_k8s_trusts_private_ranges_that_only_the_ingress_and_monitoring_reach(
    rendered: dict[str, Rendered],
) -> None:
    for target, r in rendered.items():
        trusted = Settings(
            trusted_proxies=json.loads(r.config()["CADENZA_TRUSTED_PROXIES"])
        ).trusted_proxies
        assert trusted, target
        assert all(ipaddress.ip_network(n).is_private for n in trusted), (target, trusted)
        # the premise: no peer outside these namespaces may open a connection to the API
        policy = r.named("NetworkPolicy", "cadenza-api")["spec"]
        assert "Ingress" in policy["policyTypes"], target
        peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
        assert all(set(peer) == {"namespaceSelector"} for peer in peers), (target, peers)
        namespaces = {
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers
        }
        assert namespaces == {INGRESS_NAMESPACE, MONITORING_NAMESPACE}, target
        # and no other policy admits anything to the API pods (default deny, DNS egress)
        labels = r.role("api")["spec"]["template"]["metadata"]["labels"]
        for other in r.of("NetworkPolicy"):
            selector = other["spec"]["podSelector"]
            selects_api = "matchExpressions" not in selector and all(
                labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()
            )
            if selects_api and other["metadata"]["name"] != "cadenza-api":
                assert not other["spec"].get("ingress"), (target, other["metadata"]["name"])
