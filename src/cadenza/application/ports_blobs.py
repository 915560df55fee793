"""The blob store port: where payloads over the offload threshold live (``payload_blobs``).

Keys are ``<workspace>/<instance>/<sha256>`` (each part percent-quoted, see
``payload_blobs.blob_key``), so everything of an instance or of a workspace is one prefix:
retention deletes an instance's blobs with ``delete_prefix``, workspace deletion a
workspace's. Adapters: ``infrastructure/blobs/`` (local files, S3-compatible storage).
"""

from __future__ import annotations

from typing import Protocol


class BlobMissing(LookupError):
    """A row refers to a blob the store does not have (deleted by hand, or another store)."""


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, atomically (a reader sees all of it or nothing);
        writing a key again with the same content is harmless (keys are content hashes)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The blob, or None when there is none."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with ``prefix`` (ends with ``/``); how many."""
        ...

    async def older_than(self, before: float, limit: int) -> list[str]:
        """Keys of blobs written before ``before`` (epoch seconds), at most ``limit``: the
        candidates of the orphan collector."""
        ...

    async def instances(self, after: str, limit: int) -> list[tuple[str, float]]:
        """Instance prefixes (``<workspace>/<instance>/``) in key order after ``after``, at
        most ``limit``, each with the time of its newest blob (epoch seconds): the pages the
        orphan collector walks."""
        ...

    async def delete(self, keys: list[str]) -> int:
        """Delete these blobs (missing ones are skipped); how many were there."""
        ...

    async def close(self) -> None: ...
