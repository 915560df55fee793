"""Key rotation for stored payloads: the PII stage's sealed originals re-sealed under the
first key of the ring (``cadenza secrets rotate``, docs/secrets.md#rotation).

The PII stage (``pii_codec``) stores a value that held PII as a *sealed marker* at the top of
a payload slot: instance ``inputs``/``outputs``/``error``, task ``output``/``detail``/``error``
and the payload fields of journal events. When the blob stage offloaded it, the slot holds a
blob marker and the **blob** holds the sealed marker. So the rotation walks those three tables
in key order, a page (``ROTATE_BATCH`` rows) at a time, and for every slot:

- a sealed marker under another key: opened and sealed again under the first key;
- a blob marker whose blob holds one (its marker says the key, or, for blobs written before
  it did, the preview starts like a sealed marker): the blob is read, re-sealed and written
  as a new blob of the same instance (a new hash), then the slot points at it; the old blob
  is deleted once no row of the instance mentions it any more (after the page commits);
- anything else (a plain value, an escaped user value, a marker already under the first key):
  left as it is, and a row with nothing to change is not written.

A page's changed rows are written in one transaction, each compare-and-swapped against the
text it was read with (the engine may rewrite a row meanwhile: its write wins, and the next
run takes it). Stopping anywhere loses nothing: a run starts over and skips what is done.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

from cadenza.application.payload_blobs import BLOB, SEALED_PREVIEW, BlobStage
from cadenza.application.payloads import EVENT_PAYLOAD_KEYS, TEXT_PREFIX, is_marker
from cadenza.application.pii_codec import is_sealed, reseal
from cadenza.application.ports_blobs import BlobMissing
from cadenza.application.secrets import ROTATE_BATCH, Cipher, SecretsUnavailable
from cadenza.domain.json import JSON, JSONObject

log = logging.getLogger(__name__)
JSON_SLOT, TEXT_SLOT, EVENT_DATA = "json", "text", "event"
MEMO = 10_000  # old blob refs remembered per run (a miss only writes one more blob)


@dataclass(frozen=True)
class StoredColumn:
    """One payload column of a row as stored: ``form`` says how to read ``raw`` (a JSON
    slot, an error's text, an event's data with payload fields)."""

    name: str
    form: str
    raw: str


@dataclass(frozen=True)
class StoredRow:
    table: str
    key: tuple[str | int, ...]  # the primary key, in order: the page cursor
    instance_id: str
    columns: tuple[StoredColumn, ...]


@dataclass(frozen=True)
class RowChange:
    row: StoredRow
    values: Mapping[str, JSON]  # column -> new stored value (a text column: its text)


class PayloadRows(Protocol):
    """Rows whose payload columns may hold markers (adapter: ``sql.payload_reseal``)."""

    def tables(self) -> Sequence[str]: ...

    async def page(
        self, table: str, after: tuple[str | int, ...] | None, limit: int
    ) -> list[StoredRow]:
        """Up to ``limit`` rows after ``after`` (key order) that mention a marker."""
        ...

    async def update(self, changes: Sequence[RowChange]) -> int:
        """Write the changes in one transaction, each only if its columns still hold what
        was read; how many rows were written."""
        ...

    async def mentions(self, instance_id: str, text: str) -> bool:
        """Whether any payload column of the instance's rows contains ``text``."""
        ...


@dataclass
class PayloadCounts:
    rows: int = 0  # rows rewritten
    markers: int = 0  # sealed markers re-sealed (in rows and in blobs)
    blobs: int = 0  # blobs written with a re-sealed marker
    blobs_deleted: int = 0  # old blobs no row mentions any more
    unopened: int = 0  # markers whose key is not in the ring (left as they are)
    changed_meanwhile: int = 0  # rows rewritten by the engine between read and write


@dataclass
class _Page:
    replaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # old ref -> (iid, sha)


class PayloadRotation:
    def __init__(
        self,
        rows: PayloadRows,
        cipher: Cipher,
        blobs: BlobStage | None,
        batch: int = ROTATE_BATCH,
    ) -> None:
        self.rows = rows  # what it walks (a test may wrap it)
        self._cipher = cipher
        self._blobs = blobs
        self.batch = batch
        self._memo: dict[str, JSONObject] = {}

    async def run(self) -> PayloadCounts:
        """Every table, page by page (see the module's docstring)."""
        current = self._cipher.current_key_id()
        counts = PayloadCounts()
        for table in self.rows.tables():
            after: tuple[str | int, ...] | None = None
            while page := await self.rows.page(table, after, self.batch):
                after = page[-1].key
                await self._page(page, current, counts)
        return counts

    async def _page(self, page: list[StoredRow], current: str, counts: PayloadCounts) -> None:
        state = _Page()
        changes: list[RowChange] = []
        for row in page:
            values: dict[str, JSON] = {}
            for column in row.columns:
                new = await self._column(column, current, counts, state)
                if new is not None:
                    values[column.name] = new
            if values:
                changes.append(RowChange(row, values))
        if changes:
            written = await self.rows.update(changes)
            counts.rows += written
            counts.changed_meanwhile += len(changes) - written
        assert self._blobs is not None or not state.replaced
        for ref, (instance_id, sha) in state.replaced.items():
            if self._blobs is not None and not await self.rows.mentions(instance_id, sha):
                counts.blobs_deleted += await self._blobs.blobs.delete([ref])

    async def _column(
        self, column: StoredColumn, current: str, counts: PayloadCounts, state: _Page
    ) -> JSON:
        """The column's new stored value, or None when nothing changes."""
        if column.form == TEXT_SLOT:
            if not column.raw.startswith(TEXT_PREFIX):
                return None
            marker = json.loads(column.raw[len(TEXT_PREFIX) :])
            new = await self._slot(marker, current, counts, state)
            return None if new is None else TEXT_PREFIX + json.dumps(new, separators=(",", ":"))
        stored: JSON = json.loads(column.raw)
        if column.form == JSON_SLOT:
            return await self._slot(stored, current, counts, state)
        if not isinstance(stored, dict):
            return None
        data: JSONObject | None = None
        for key in EVENT_PAYLOAD_KEYS.intersection(stored):
            new = await self._slot(stored[key], current, counts, state)
            if new is not None:
                data = data if data is not None else dict(stored)
                data[key] = new
        return data

    async def _slot(self, stored: JSON, current: str, counts: PayloadCounts, state: _Page) -> JSON:
        if is_sealed(stored):
            assert isinstance(stored, dict)
            return self._reseal(stored, current, counts)
        if is_marker(stored, BLOB) and self._blobs is not None:
            assert isinstance(stored, dict)
            return await self._blob(stored, current, counts, state)
        return None

    def _reseal(self, marker: JSONObject, current: str, counts: PayloadCounts) -> JSON:
        try:
            new = reseal(self._cipher, marker, current)
        except SecretsUnavailable as exc:
            counts.unopened += 1
            log.warning("a sealed payload is left as it is: %s", exc)
            return None
        counts.markers += new is not None
        return new

    async def _blob(
        self, marker: JSONObject, current: str, counts: PayloadCounts, state: _Page
    ) -> JSON:
        assert self._blobs is not None
        key = marker.get("key")
        if key == current:
            return None
        if key is None and not str(marker.get("preview", "")).startswith(SEALED_PREVIEW):
            return None  # written before blob markers said the key: not a sealed value
        ref = str(marker.get("ref"))
        new = self._memo.get(ref)
        if new is None:
            try:
                content = await self._blobs.load(marker)
            except BlobMissing as exc:
                log.warning("key rotation: %s", exc)
                return None
            if not is_sealed(content):
                return None
            assert isinstance(content, dict)
            resealed = self._reseal(content, current, counts)
            if resealed is None:
                return None
            new = await self._blobs.replace(marker, resealed)
            counts.blobs += 1
            if len(self._memo) >= MEMO:
                self._memo.clear()
            self._memo[ref] = new
        instance_id = ref.split("/")[1] if ref.count("/") >= 2 else ""
        state.replaced[ref] = (unquote(instance_id), str(marker.get("sha256")))
        return new
