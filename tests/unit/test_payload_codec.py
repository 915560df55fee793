"""The payload codec: markers, escaping, the blob stage's threshold, stage order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadenza.application.payload_blobs import BlobStage, blob_key, instance_prefix
from cadenza.application.payloads import (
    ENGINE,
    MARKER,
    READER,
    TEXT_PREFIX,
    Audience,
    EncodeBatch,
    PayloadCodec,
    PayloadSlot,
    is_marker,
)
from cadenza.application.ports_blobs import BlobMissing
from cadenza.domain.json import JSON
from cadenza.infrastructure.blobs.files import FileBlobStore

SLOT = PayloadSlot("ws-1", "inst-1", "tasks.output")


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def codec_over(store: FileBlobStore, threshold: int = 64) -> PayloadCodec:
    return PayloadCodec([BlobStage(store, threshold)])


SMALL_AND_LARGE: list[JSON] = [
    None,
    True,
    0,
    3.5,
    10**40,
    "",
    "short",
    "é" * 100,
    [],
    {},
    {"a": 1},
    {"a": "x" * 500},
    ["y" * 300, {"k": [1, 2, 3]}],
    {MARKER: "blob", "ref": "../../etc/passwd", "sha256": "0", "size": 1},
    {MARKER: "escaped", "value": 1},
    {"nested": {MARKER: "blob", "ref": "x"}},
]


@pytest.mark.parametrize("value", SMALL_AND_LARGE)
async def test_round_trip(store: FileBlobStore, value: JSON) -> None:
    codec = codec_over(store)
    batch = EncodeBatch()
    stored = codec.encode(SLOT, value, batch)
    await batch.flush()
    assert await codec.decode(SLOT, stored, ENGINE) == value
    assert await codec.decode(SLOT, stored, READER) == value
    if not is_marker(stored, "blob"):
        assert codec.view(SLOT, stored) == value
    # what the row holds survives a trip through JSON text (a database column)
    assert await codec.decode(SLOT, json.loads(json.dumps(stored))) == value


async def test_a_users_marker_lookalike_is_escaped_never_read_as_a_marker(
    store: FileBlobStore,
) -> None:
    codec = codec_over(store, threshold=10_000)
    forged: JSON = {MARKER: "blob", "ref": "ws-2/inst-9/abc", "sha256": "abc", "size": 3}
    batch = EncodeBatch()
    stored = codec.encode(SLOT, forged, batch)
    assert stored == {MARKER: "escaped", "value": forged}
    assert batch.pending == 0  # nothing written: it was small and not offloaded
    assert await codec.decode(SLOT, stored) == forged  # never loads ws-2's blob
    assert codec.view(SLOT, stored) == forged


async def test_the_codec_without_stages_still_escapes() -> None:
    codec = PayloadCodec()
    forged: JSON = {MARKER: "escaped", "value": "not mine"}
    stored = codec.encode(SLOT, forged, EncodeBatch())
    assert await codec.decode(SLOT, stored) == forged
    plain: JSON = {"a": [1, 2]}
    assert codec.encode(SLOT, plain, EncodeBatch()) is plain  # no copy on the hot path


async def test_threshold_decides_what_moves(store: FileBlobStore) -> None:
    codec = codec_over(store, threshold=100)
    batch = EncodeBatch()
    at_limit = "x" * 98  # 100 bytes of JSON with its quotes
    over = "x" * 99
    assert codec.encode(SLOT, at_limit, batch) is at_limit
    marker = codec.encode(SLOT, over, batch)
    assert is_marker(marker, "blob")
    assert isinstance(marker, dict)
    assert marker["size"] == 101
    assert marker["preview"] == over[:200]
    assert str(marker["ref"]).startswith(instance_prefix("ws-1", "inst-1"))
    assert batch.pending == 1
    assert await store.get(str(marker["ref"])) is None  # not before the flush
    await batch.flush()
    assert await store.get(str(marker["ref"])) == json.dumps(over).encode()


async def test_one_value_in_several_slots_is_written_once(store: FileBlobStore) -> None:
    codec = codec_over(store)
    big: JSON = {"messages": ["m" * 100] * 5}
    batch = EncodeBatch()
    first = codec.encode(SLOT, big, batch)
    again = codec.encode(PayloadSlot("ws-1", "inst-1", "events.TaskCompleted.output"), big, batch)
    copy: JSON = {"messages": ["m" * 100] * 5}
    same_content = codec.encode(SLOT, copy, batch)
    assert first == again == same_content
    assert batch.pending == 1


async def test_text_slots_keep_text(store: FileBlobStore) -> None:
    codec = codec_over(store, threshold=50)
    batch = EncodeBatch()
    assert codec.encode_text(SLOT, "boom", batch) == "boom"
    assert codec.encode_text(SLOT, None, batch) is None
    lookalike = TEXT_PREFIX + '{"$cadenza":"blob"}'
    stored = codec.encode_text(SLOT, lookalike, batch)
    assert stored is not None
    assert stored.startswith(TEXT_PREFIX)
    long_error = "Traceback " * 40
    offloaded = codec.encode_text(SLOT, long_error, batch)
    assert offloaded is not None
    assert offloaded.startswith(TEXT_PREFIX)
    await batch.flush()
    assert await codec.decode_text(SLOT, stored) == lookalike
    assert await codec.decode_text(SLOT, offloaded) == long_error
    shown = codec.view_text(SLOT, offloaded)
    assert is_marker(shown, "blob")


async def test_event_data_encodes_payload_fields_only(store: FileBlobStore) -> None:
    codec = codec_over(store, threshold=20)
    data: dict[str, JSON] = {
        "task_id": "t" * 40,
        "attempt": 1,
        "output": {"text": "o" * 40},
        "ports": ["a" * 40],
    }
    batch = EncodeBatch()
    stored = codec.encode_event("ws-1", "inst-1", "TaskCompleted", dict(data), batch)
    assert stored["task_id"] == data["task_id"]
    assert stored["ports"] == data["ports"]
    assert is_marker(stored["output"], "blob")
    await batch.flush()
    assert await codec.decode_event("inst-1", "TaskCompleted", stored) == data
    assert codec.view_event("inst-1", "TaskCompleted", stored) is not stored


async def test_a_missing_or_altered_blob_is_an_error(store: FileBlobStore, tmp_path: Path) -> None:
    codec = codec_over(store)
    batch = EncodeBatch()
    marker = codec.encode(SLOT, "z" * 200, batch)
    with pytest.raises(BlobMissing):  # not flushed: no blob
        await codec.decode(SLOT, marker)
    await batch.flush()
    assert isinstance(marker, dict)
    path = tmp_path / "blobs" / Path(str(marker["ref"]))
    path.write_bytes(b'"tampered"')
    with pytest.raises(BlobMissing):
        await codec.decode(SLOT, marker)


class Upper:
    """A stage that must see the real value (as redaction would) and leaves a marker."""

    def encode(self, slot: PayloadSlot, value: JSON, batch: EncodeBatch) -> JSON:
        if isinstance(value, str):
            return {MARKER: "upper", "shown": value.upper(), "real": value}
        return value

    def view(self, slot: PayloadSlot, stored: JSON) -> JSON:
        if isinstance(stored, dict) and is_marker(stored, "upper"):
            return stored["shown"]
        return stored

    async def decode(self, slot: PayloadSlot, stored: JSON, audience: Audience) -> JSON:
        if not is_marker(stored, "upper"):
            return stored
        assert isinstance(stored, dict)
        return stored["real"] if audience is ENGINE else stored["shown"]


async def test_stages_encode_in_order_and_decode_in_reverse(store: FileBlobStore) -> None:
    codec = codec_over(store, threshold=100).with_stage(Upper(), first=True)
    batch = EncodeBatch()
    stored = codec.encode(SLOT, "secret " * 30, batch)
    assert is_marker(stored, "blob")  # the blob holds the first stage's marker
    await batch.flush()
    assert await codec.decode(SLOT, stored, ENGINE) == "secret " * 30
    assert await codec.decode(SLOT, stored, READER) == "SECRET " * 30
    small = codec.encode(SLOT, "hi", batch)
    assert codec.view(SLOT, small) == "HI"


def test_keys_cannot_climb_out_of_their_prefix() -> None:
    key = blob_key("../ws", "a/b", "f" * 64)
    parts = key.split("/")
    assert len(parts) == 3
    assert all(p not in ("", ".", "..") for p in parts)
    assert instance_prefix("ws", "i") == "ws/i/"


class Recording:
    """A stage that records what it was asked to encode."""

    def __init__(self) -> None:
        self.seen: list[JSON] = []

    def encode(self, slot: PayloadSlot, value: JSON, batch: EncodeBatch) -> JSON:
        self.seen.append(value)
        return value

    def view(self, slot: PayloadSlot, stored: JSON) -> JSON:
        return stored

    async def decode(self, slot: PayloadSlot, stored: JSON, audience: Audience) -> JSON:
        return stored


def test_empty_values_never_reach_a_stage_and_events_without_payloads_skip_them() -> None:
    stage = Recording()
    codec = PayloadCodec([stage])
    batch = EncodeBatch()
    empties: list[JSON] = [None, {}, [], "", 0, False]
    for empty in empties:
        assert codec.encode(SLOT, empty, batch) == empty
    assert stage.seen == []
    scheduled: dict[str, JSON] = {"task_id": "t", "node_id": "n", "attempt": 1}
    assert codec.encode_event("ws-1", "inst-1", "TaskScheduled", scheduled, batch) == scheduled
    assert stage.seen == []
    completed: dict[str, JSON] = {"task_id": "t", "output": "x", "error": None}
    codec.encode_event("ws-1", "inst-1", "TaskCompleted", completed, batch)
    assert stage.seen == ["x"]
