"""The blob stage of the payload codec: values over a size threshold move to the blob store.

The row keeps a marker instead::

    {"$cadenza": "blob", "ref": "<workspace>/<instance>/<sha256>", "sha256": "<hex>",
     "size": <bytes of the JSON>, "preview": "<first 200 characters>"}

The blob holds the value's compact JSON (UTF-8). Keys are content hashes within an instance:
the same output written in a task row, its event and the instance's outputs is one blob, and
writing it again (a retried batch) is harmless. The check is cheap when nothing is over the
threshold: scalars and empty containers are skipped at once, a string by its length (a
character is at most 6 bytes of JSON), anything else by one ``orjson`` encoding.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from urllib.parse import quote, unquote

import orjson

from cadenza.application.payloads import (
    MARKER,
    Audience,
    EncodeBatch,
    PayloadSlot,
    is_marker,
)
from cadenza.application.ports_blobs import BlobMissing, BlobStore
from cadenza.domain.json import JSON

BLOB = "blob"
SEALED_PREVIEW = '{"$cadenza":"sealed"'
"""How the preview of a blob holding a PII stage's sealed marker begins (key rotation loads
only those blobs, when their marker does not say the key)."""
PREVIEW_CHARS = 200
DEFAULT_THRESHOLD = 64 * 1024


def _part(text: str) -> str:
    """One key part: percent-quoted, never empty, ``.`` or ``..`` (a path on a filesystem)."""
    quoted = quote(text, safe="-_")
    return quoted.replace(".", "%2E") or "%00"


def workspace_prefix(workspace_id: str) -> str:
    return f"{_part(workspace_id)}/"


def instance_prefix(workspace_id: str, instance_id: str) -> str:
    return f"{_part(workspace_id)}/{_part(instance_id)}/"


def blob_key(workspace_id: str, instance_id: str, sha256: str) -> str:
    return f"{instance_prefix(workspace_id, instance_id)}{sha256}"


def _dumps(value: JSON) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _loads(data: bytes) -> JSON:
    loaded: JSON = orjson.loads(data) if data else None
    return loaded


def _preview(value: JSON, data: bytes) -> str:
    """What a reader may see of ``value``: a string itself, a marker that carries its shown
    form (a PII stage's sealed marker: the redacted value) that form, else the JSON."""
    if type(value) is dict and MARKER in value and "shown" in value:
        value = value["shown"]
        data = _dumps(value)
    if isinstance(value, str):
        return value[:PREVIEW_CHARS]
    return data[: PREVIEW_CHARS * 4].decode(errors="ignore")[:PREVIEW_CHARS]


class BlobStage:
    """Offloads values over ``threshold`` bytes of JSON to ``blobs``."""

    def __init__(self, blobs: BlobStore, threshold: int = DEFAULT_THRESHOLD) -> None:
        self.blobs = blobs
        self.threshold = threshold
        # a string this short cannot be over: at most 6 bytes of JSON a character, 2 quotes
        self._inline_chars = max(0, (threshold - 2) // 6)

    def encode(self, slot: PayloadSlot, value: JSON, batch: EncodeBatch) -> JSON:
        kind = type(value)
        if kind is str:
            if len(value) <= self._inline_chars:  # type: ignore[arg-type]
                return value
        elif (kind is not dict and kind is not list) or not value:
            return value  # None, bool, int, float, empty containers: never large
        data = _dumps(value)
        if len(data) <= self.threshold:
            return value
        # over the threshold: the same object in another slot of this batch (a task's
        # output in its row and its event) is one marker, hashed once
        memo_key = (id(value), slot.workspace_id, slot.instance_id)
        seen = batch.memo.get(memo_key)
        if seen is not None and seen[0] is value:
            return seen[1]
        marker = self._offload(slot, value, data, batch)
        batch.memo[memo_key] = (value, marker)
        return marker

    def _offload(
        self, slot: PayloadSlot, value: JSON, data: bytes, batch: EncodeBatch
    ) -> dict[str, JSON]:
        sha = hashlib.sha256(data).hexdigest()
        ref = blob_key(slot.workspace_id, slot.instance_id, sha)
        batch.before_commit(ref, partial(self.blobs.put, ref, data))
        text = _preview(value, data)
        marker: dict[str, JSON] = {
            MARKER: BLOB,
            "ref": ref,
            "sha256": sha,
            "size": len(data),
            "preview": text,
        }
        sealed_by = value.get("key") if type(value) is dict and MARKER in value else None
        if isinstance(sealed_by, str):  # a sealed marker: its key, for key rotation
            marker["key"] = sealed_by
        return marker

    async def replace(self, marker: dict[str, JSON], value: JSON) -> dict[str, JSON]:
        """A blob for ``value`` (what ``marker``'s blob held, changed: re-sealed by key
        rotation) in the same instance's prefix, written now; its marker."""
        data = _dumps(value)
        batch = EncodeBatch()
        ref = str(marker.get("ref"))
        workspace, instance = (unquote(p) for p in ref.split("/")[:2])
        new = self._offload(PayloadSlot(workspace, instance, "payload"), value, data, batch)
        await batch.flush()
        assert isinstance(new, dict)  # _offload
        return new

    def view(self, slot: PayloadSlot, stored: JSON) -> JSON:
        return stored  # the marker is what a list shows: size and preview, loaded on demand

    async def decode(self, slot: PayloadSlot, stored: JSON, audience: Audience) -> JSON:
        if not is_marker(stored, BLOB):
            return stored
        assert isinstance(stored, dict)  # is_marker
        return await self.load(stored)

    async def load(self, marker: dict[str, JSON]) -> JSON:
        """The stored form a blob marker stands for; ``BlobMissing`` if the blob is gone
        or does not match its hash."""
        ref = str(marker.get("ref"))
        data = await self.blobs.get(ref)
        if data is None:
            raise BlobMissing(f"payload blob {ref} is missing")
        if hashlib.sha256(data).hexdigest() != marker.get("sha256"):
            raise BlobMissing(f"payload blob {ref} does not match its hash")
        return _loads(data)


class WorkspaceBlobRemover:
    """The workspace-deletion job's blob hook (``ports_workspaces.WorkspaceBlobs``): every
    blob of the workspace is under its prefix; deleting it again finds none (idempotent)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def delete_workspace_blobs(self, workspace_id: str) -> int:
        return await self._blobs.delete_prefix(workspace_prefix(workspace_id))
