"""Blobs in S3-compatible storage (AWS S3, MinIO, Ceph, R2, ...) through ``boto3``.

``boto3`` is AWS's own, maintained client and works against any S3-compatible endpoint;
its calls are blocking, so each runs on a worker thread (``asyncio.to_thread``). Blob I/O
only happens for payloads over the offload threshold and for the lazy payload route, so a
thread hop per call costs nothing that matters, and it avoids ``aiobotocore``, which pins
exact ``botocore`` versions (a constant source of resolver conflicts with other packages).
Credentials come from the environment only (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, or the instance role): nothing secret is in Cadenza's settings.

Keys are ``<prefix><workspace>/<instance>/<sha256>``; an object PUT is atomic in S3.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if client is None:
            import boto3  # only a process configured for S3 pays for importing it

            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None
            )
        self._client = client

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data
        )

    async def get(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                found = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self._client.exceptions.NoSuchKey:
                return None
            body = found["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        return await asyncio.to_thread(read)

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        )
        return [obj for page in pages for obj in page.get("Contents", [])]

    def _delete_keys(self, full_keys: list[str]) -> int:
        gone = 0
        for i in range(0, len(full_keys), 1000):  # DeleteObjects takes 1,000 keys a call
            chunk = full_keys[i : i + 1000]
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )
            gone += len(chunk)
        return gone

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.strip("/"):
            raise ValueError("refusing to delete every blob (empty prefix)")

        def remove() -> int:
            return self._delete_keys([obj["Key"] for obj in self._list(prefix)])

        return await asyncio.to_thread(remove)

    async def older_than(self, before: float, limit: int) -> list[str]:
        cutoff = datetime.fromtimestamp(before, UTC)

        def scan() -> list[str]:
            found = [
                obj["Key"][len(self.prefix) :]
                for obj in self._list("")
                if obj["LastModified"] < cutoff
            ]
            return found[:limit]

        return await asyncio.to_thread(scan)

    async def instances(self, after: str, limit: int) -> list[tuple[str, float]]:
        def scan() -> list[tuple[str, float]]:
            newest: dict[str, float] = {}
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, StartAfter=self._key(after) if after else ""
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    ws, _, rest = obj["Key"][len(self.prefix) :].partition("/")
                    iid = rest.partition("/")[0]
                    prefix = f"{ws}/{iid}/"
                    if prefix <= after:
                        continue
                    if prefix not in newest and len(newest) >= limit:
                        return sorted(newest.items())  # keys come in order: the page is whole
                    at = obj["LastModified"].timestamp()
                    newest[prefix] = max(newest.get(prefix, 0.0), at)
            return sorted(newest.items())

        return await asyncio.to_thread(scan)

    async def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        full = [self._key(k) for k in keys]
        return await asyncio.to_thread(self._delete_keys, full)

    async def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            await asyncio.to_thread(close)
