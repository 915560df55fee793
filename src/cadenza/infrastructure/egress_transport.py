"""The aiohttp side of ``egress``: the guarded resolver, the shared session, one exchange.

Imported by ``Egress`` on its first request, so a process that sends no HTTP request never
imports aiohttp (start-up time, issue 10). The policy and the redirect handling stay in
``egress``; every address DNS returns is checked here, inside the connector's resolver.
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDict
from yarl import URL

from cadenza.application.ports import EgressDenied, HttpResponse
from cadenza.infrastructure.egress import EgressPolicy, ResponseTooLarge

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024  # bytes read per step of a response body


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and keeps only the addresses the policy admits."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        admitted, refused = [], []
        for result in results:
            reason = self._policy.address_refusal(result["host"], host)
            if reason is None:
                admitted.append(result)
            else:
                refused.append(f"{result['host']} ({reason})")
        if not admitted:
            # Not an OSError on purpose: aiohttp passes it through unwrapped.
            raise EgressDenied(f"{host} resolves only to refused addresses: {', '.join(refused)}")
        return admitted

    async def close(self) -> None:
        await self._inner.close()


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    too_large = f"response body exceeds the {limit}-byte limit (max_response_bytes)"
    if response.content_length is not None and response.content_length > limit:
        raise ResponseTooLarge(too_large)
    chunks, size = [], 0
    # Counted after decompression, so a small compressed bomb is caught too.
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


class AiohttpTransport:
    """One shared aiohttp session whose connector resolves through the policy's guard.

    The session is created on first use inside the running loop; ``aclose`` closes it.
    """

    def __init__(
        self, policy: EgressPolicy, limit: int, resolver: AbstractResolver | None = None
    ) -> None:
        self.policy = policy
        self._limit = limit
        self._inner_resolver = resolver  # injectable for tests; default: aiohttp's
        self._resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._resolver = GuardedResolver(self.policy, self._inner_resolver or DefaultResolver())
            connector = aiohttp.TCPConnector(limit=self._limit, resolver=self._resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # workflows must not share cookies
                trust_env=False,  # an environment proxy would bypass the address checks
            )
        return self._session

    async def exchange(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | None, budget_s: float
    ) -> HttpResponse | tuple[int, str]:
        """One hop: the final response, or a redirect's (status, location)."""
        client_timeout = aiohttp.ClientTimeout(
            total=budget_s, connect=min(budget_s, self.policy.connect_timeout_s)
        )
        try:
            async with self._get_session().request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=client_timeout,
            ) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECTS and location:
                    return response.status, location
                data = await _read_limited(response, self.policy.max_response_bytes)
                merged = {
                    k.lower(): ", ".join(response.headers.getall(k)) for k in response.headers
                }
                return HttpResponse(response.status, merged, data, str(url))
        except EgressDenied:
            raise
        except aiohttp.InvalidURL as exc:  # e.g. non-canonical IPv4 such as http://2130706433/
            raise EgressDenied(f"invalid URL {url}: {exc}") from exc
        except TimeoutError as exc:  # aiohttp's timeouts subclass TimeoutError
            raise TimeoutError(f"{method} {url.origin()} timed out after {budget_s:.3g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.__cause__, EgressDenied):  # in case a future aiohttp wraps it
                raise exc.__cause__ from exc
            raise  # already an OSError
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"{method} {url.origin()} failed: {exc!r}") from exc

    async def aclose(self) -> None:
        """Close the shared session (and its connections and resolver)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
