"""The one way out: outbound HTTP through an SSRF guard (the aiohttp ``HttpClient`` adapter;
the aiohttp side, imported on the first request, is in ``egress_transport``).

Every destination is checked twice: the URL's host before anything is sent (aiohttp never asks a
resolver about IP literals), and every address DNS returns, inside the connector's resolver, so
connections only ever go to addresses that passed the policy; a name that re-binds to a private
address between two lookups is still refused. Redirects are followed by hand so that every hop
gets the same checks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING

from multidict import CIMultiDict
from yarl import URL

from cadenza.application.ports import EgressDenied, HttpRequest, HttpResponse
from cadenza.infrastructure.observability.tracing import inject_trace

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

    from cadenza.infrastructure.egress_transport import AiohttpTransport

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Credential endpoints of cloud providers: refused even with allow_private, since a workflow
# reaching them would act with the host's cloud identity.
METADATA_ADDRESSES = frozenset(
    ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
METADATA_HOSTS = frozenset({"metadata.google.internal"})

_CGNAT = ip_network("100.64.0.0/10")
_NAT64 = ip_network("64:ff9b::/96")
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
_KINDS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)


class ResponseTooLarge(EgressDenied):
    """The response body exceeded ``EgressPolicy.max_response_bytes``."""


class TooManyRedirects(EgressDenied):
    """More redirects than ``EgressPolicy.max_redirects``."""


def _normalize_host(host: str) -> str:
    return host.rstrip(".").lower()


def _parse_ip(text: str) -> IPAddress | None:
    try:
        # A scope id ("fe80::1%eth0") does not change which range the address is in.
        return ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def non_public_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is one."""
    if isinstance(ip, IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by the IPv4 address they reach.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = non_public_reason(embedded)
            return f"{reason} (embedded in {ip})" if reason else None
    if isinstance(ip, IPv4Address) and ip in _CGNAT:  # before is_private, for a clearer reason
        return "shared address space (CGNAT)"
    for attribute, kind in _KINDS:
        if getattr(ip, attribute):
            return f"{kind} address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Where outbound HTTP may go. ``allowed_hosts`` holds exact host names and IP/CIDR strings
    admitted even when private; a cloud metadata address is admitted only when that very address
    (or the metadata host name it was reached by) is listed."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_schemes: frozenset[str] = frozenset({"http", "https"})
    max_redirects: int = 5
    max_response_bytes: int = 10 * 1024 * 1024
    connect_timeout_s: float = 10.0
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[tuple[IPNetwork, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: set[str] = set()
        networks: list[tuple[IPNetwork, bool]] = []
        for entry in self.allowed_hosts:
            try:
                net = ip_network(entry.strip(), strict=False)
            except ValueError:
                names.add(_normalize_host(entry))
            else:
                networks.append((net, net.num_addresses == 1))
        # Derived lookup tables; the dataclass stays frozen for callers.
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_networks", tuple(networks))

    def address_refusal(self, address: str, hostname: str | None = None) -> str | None:
        """Why connecting to ``address`` (reached via ``hostname``) is refused, or None."""
        ip = _parse_ip(address)
        if ip is None:
            return f"{address!r} is not an IP address"
        name = _normalize_host(hostname) if hostname else None
        listed = [exact for net, exact in self._networks if ip in net]
        if ip in METADATA_ADDRESSES:
            if any(listed) or (name in METADATA_HOSTS and name in self._names):
                return None
            return f"cloud metadata address {ip}"
        if listed or (name is not None and name in self._names) or self.allow_private:
            return None
        return non_public_reason(ip)

    def url_refusal(self, url: URL) -> str | None:
        """Why ``url`` may not be requested, judged before any lookup or connection, or None."""
        scheme = (url.scheme or "").lower()
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes))
            return f"scheme {scheme or '(none)'!r} is not allowed (allowed: {allowed})"
        if not url.host:
            return "the URL has no host"
        name = _normalize_host(url.host)
        if name in METADATA_HOSTS and name not in self._names:
            return f"cloud metadata host {name}"
        if _parse_ip(url.host) is not None:
            return self.address_refusal(url.host)
        return None  # a name: its addresses are checked by the resolver


def _redirect(
    status: int, method: str, headers: CIMultiDict[str], body: bytes | None, old: URL, new: URL
) -> tuple[str, CIMultiDict[str], bytes | None]:
    """The method, headers and body of the request that follows a redirect."""
    headers = headers.copy()
    # 303 always, and 301/302 after POST (as browsers do), turn into a body-less GET.
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        for name in ("Content-Type", "Content-Length", "Content-Encoding"):
            headers.popall(name, None)
    downgraded = old.scheme == "https" and new.scheme != "https"
    if (old.host, old.port) != (new.host, new.port) or downgraded:
        for name in _CREDENTIAL_HEADERS:  # credentials belong to the origin they were meant for
            headers.popall(name, None)
    return method, headers, body


class Egress:
    """``HttpClient`` over one shared aiohttp session with every destination checked.

    The session is created on first use inside the running loop; call ``aclose`` when done.
    """

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        *,
        limit: int = 100,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.policy = policy or EgressPolicy()
        self._limit = limit
        self._inner_resolver = resolver  # injectable for tests; default: aiohttp's
        self._transport: AiohttpTransport | None = None

    def _get_transport(self) -> AiohttpTransport:
        # aiohttp is imported on the first request, not when the runtime is built: a worker
        # that runs no http node never pays for it (start-up time, issue 10)
        if self._transport is None:
            from cadenza.infrastructure.egress_transport import AiohttpTransport

            self._transport = AiohttpTransport(self.policy, self._limit, self._inner_resolver)
        return self._transport

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``, following redirects. Raises EgressDenied, TimeoutError or OSError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        method, headers, body = request.method.upper(), CIMultiDict(request.headers), request.body
        inject_trace(headers)  # W3C traceparent of the calling task's span
        try:
            url = URL(request.url)
        except (ValueError, TypeError) as exc:
            raise EgressDenied(f"invalid URL {request.url!r}: {exc}") from exc
        for _hop in range(self.policy.max_redirects + 1):
            reason = self.policy.url_refusal(url)
            if reason is not None:
                raise EgressDenied(f"destination {url.host or url} refused: {reason}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"request timed out after {request.timeout_s}s")
            response = await self._exchange(method, url, headers, body, remaining)
            if isinstance(response, HttpResponse):
                return response
            status, location = response
            try:
                target = url.join(URL(location))
            except ValueError as exc:
                raise EgressDenied(f"invalid redirect location {location!r}: {exc}") from exc
            method, headers, body = _redirect(status, method, headers, body, url, target)
            url = target
        raise TooManyRedirects(f"more than {self.policy.max_redirects} redirects (max_redirects)")

    async def _exchange(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | None, budget_s: float
    ) -> HttpResponse | tuple[int, str]:
        """One hop: the final response, or a redirect's (status, location)."""
        return await self._get_transport().exchange(method, url, headers, body, budget_s)

    async def aclose(self) -> None:
        """Close the shared session (and its connections and resolver)."""
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
