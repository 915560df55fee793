"""What the SDK-based model providers share: the httpx2 client every one of them uses,
Retry-After parsing, status errors. Imports the openai SDK: only the SDK providers import this.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping

import httpx2
import openai

from cadenza.application.ports_ai import ProviderError
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.observability.tracing import trace_hooks

# Chosen with bench/httpx2_pool.py (docs/providers.md): 800 concurrent calls to a 50 ms server
# ran fastest with 50-100 connections. httpx2's pool does O(connections) work (a socket probe per
# idle connection) on every request start and end, so 400-800 connections cost 2-6x the client
# CPU per call. The pool also bounds calls in flight: raise it when slow (multi-second) models
# must run more than 100 calls at once per process.
DEFAULT_POOL_SIZE = 100
DEFAULT_KEEPALIVE = 100


def make_http_client(
    pool_size: int | None = DEFAULT_POOL_SIZE,
    *,
    keepalive: int | None = DEFAULT_KEEPALIVE,
    timeout_s: float = 30.0,
) -> httpx2.AsyncClient:
    """The shared httpx2 client for SDK-based providers; ``pool_size=None`` is unbounded.

    One client per process (or per provider host) so connections are reused across calls;
    the pool bounds the sockets we open against a provider, and callers beyond it queue
    inside httpx2 (bounded by the per-call timeout) instead of failing.
    """
    keep = keepalive if pool_size is None or keepalive is None else min(keepalive, pool_size)
    # The SDK's aiohttp transport: httpx2's own pool spends most of its time managing
    # connections under hundreds of concurrent calls (see docs/providers.md).
    return openai.DefaultAioHttpClient(
        limits=httpx2.Limits(
            max_connections=pool_size, max_keepalive_connections=keep, keepalive_expiry=30.0
        ),
        timeout=httpx2.Timeout(timeout_s, connect=min(5.0, timeout_s)),
        # Provider endpoints are configured explicitly; environment proxies must not reroute them.
        trust_env=False,
        event_hooks=trace_hooks(),  # W3C traceparent on every request
    )


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def status_error(
    provider: str, status: int, message: str, headers: Mapping[str, str] | None
) -> ProviderError:
    """An HTTP error answer as ProviderError: 408/409/429/5xx may pass on retry, others not."""
    retryable = status in (408, 409, 429) or status >= 500
    return ProviderError(
        f"{provider}: HTTP {status}: {message}",
        retryable=retryable,
        status=status,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


def parse_arguments(provider: str, raw: str) -> JSONObject:
    """Tool-call arguments as a JSON object; the model produced them, so check the shape."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise ProviderError(
            f"{provider}: tool arguments are not JSON: {exc}", retryable=False
        ) from exc
    if not isinstance(value, dict):
        raise ProviderError(f"{provider}: tool arguments are not an object", retryable=False)
    return value
