"""A cache shared by the processes of one deployment (Redis), for values that are costly to
read from the database and cheap to drop: published definition versions, agent snapshots.

Contract (every adapter passes ``tests/contract/test_cache_contract.py``):
- a miss and an unreachable cache look the same to the caller (``get`` returns None,
  ``incr`` returns None): the caller reads the database, never fails because of the cache;
- ``set`` may drop a value (too large, cache down): a cache is never the only copy;
- keys are plain strings built by the caller, which puts the workspace in every key that
  holds a workspace's data (``cache_key``); the adapter adds its own prefix.
"""

from __future__ import annotations

import json
from typing import Protocol

from cadenza.domain.json import JSON


class SharedCache(Protocol):
    @property
    def shared(self) -> bool:
        """False for the no-op cache (nothing is kept): callers may skip building values."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str) -> int | None:
        """Add 1 to the counter at ``key`` (kept without expiry) and return it; None when the
        cache cannot count (no-op cache, cache down)."""
        ...

    async def aclose(self) -> None: ...


def cache_key(kind: str, workspace: str, *parts: object) -> str:
    """``kind:workspace:part:...``; workspace ids and process ids are slugs (no ``:``)."""
    return ":".join((kind, workspace, *(str(p) for p in parts)))


async def get_json(cache: SharedCache, key: str) -> JSON | None:
    """The JSON value at ``key``; a value that does not decode counts as a miss."""
    raw = await cache.get(key)
    if raw is None:
        return None
    try:
        value: JSON = json.loads(raw)
    except ValueError:
        return None
    return value


async def set_json(cache: SharedCache, key: str, value: JSON, ttl_s: float) -> None:
    await cache.set(key, json.dumps(value, separators=(",", ":")).encode(), ttl_s)
