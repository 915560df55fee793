"""The lazy payload route's use case: one offloaded value of one instance, for a reader.

The API shows an offloaded payload as its marker (size, preview, ``ref``); a reader who wants
the whole value asks for it by its hash. Tenancy is by construction: the blob key is built
from the caller's workspace and an instance that must be in it, so another workspace's hash
names nothing here (404, as an unknown one).
"""

from __future__ import annotations

import contextlib
import hashlib
import re

import orjson

from cadenza.application.payload_blobs import BLOB, blob_key
from cadenza.application.payloads import READER, PayloadCodec, PayloadSlot, is_marker
from cadenza.application.ports_api import Queries
from cadenza.application.ports_blobs import BlobStore
from cadenza.application.roles import Permission, Principal
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSON

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PayloadReads:
    def __init__(self, queries: Queries, codec: PayloadCodec, blobs: BlobStore | None) -> None:
        self._queries = queries
        self._codec = codec
        self._blobs = blobs

    async def load(self, p: Principal, instance_id: str, sha256: str) -> bytes:
        """The value's JSON as a reader may see it (other stages' reader view applied)."""
        p.require(Permission.READ)
        if await self._queries.instance(p.workspace_id, instance_id) is None:
            raise NotFound(f"instance {instance_id!r} not found")
        return await self._load(p, instance_id, sha256)

    async def expand(self, p: Principal, instance_id: str, values: list[JSON]) -> list[JSON]:
        """``values`` (read from this instance, as the API shows them) with each blob marker
        replaced by its value (``?expand=payloads``); the caller has read the instance in its
        workspace already. A blob that is gone leaves its marker."""
        p.require(Permission.READ)
        out: list[JSON] = []
        for value in values:
            if isinstance(value, dict) and is_marker(value, BLOB):
                with contextlib.suppress(NotFound):  # gone: the marker stays
                    value = orjson.loads(await self._load(p, instance_id, str(value["sha256"])))
            out.append(value)
        return out

    async def _load(self, p: Principal, instance_id: str, sha256: str) -> bytes:
        if self._blobs is None or not SHA256.match(sha256):
            raise NotFound(f"payload {sha256!r} of instance {instance_id!r} not found")
        data = await self._blobs.get(blob_key(p.workspace_id, instance_id, sha256))
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            raise NotFound(f"payload {sha256!r} of instance {instance_id!r} not found")
        stored: JSON = orjson.loads(data)
        slot = PayloadSlot(p.workspace_id, instance_id, "payload")
        shown = await self._codec.decode(slot, stored, READER)
        if shown is stored or shown == stored:
            return data  # nothing to change: the stored bytes as they are
        return orjson.dumps(shown)
