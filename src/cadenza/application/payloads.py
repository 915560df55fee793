"""The payload codec: how a JSON value the engine stores (inputs, outputs, errors, details,
model messages, event data) becomes the form kept in a database row, and back.

Every stored payload goes through one ordered list of ``PayloadStage``s: ``encode`` runs them
in order, ``decode`` and ``view`` in reverse. A stage leaves a value alone or replaces it by a
*marker* of its own kind, an object ``{"$cadenza": "<kind>", ...}`` (the blob stage's kind is
``"blob"``: the value lives in the blob store and the row keeps its reference, size, hash and
a preview). Markers are recognised only at the top of a *slot* (a JSON column, or one payload
field of an event's data), so a value nested in user data is never read as one; a user value
that is itself an object with a ``"$cadenza"`` key is escaped first as
``{"$cadenza": "escaped", "value": <the value>}`` and unescaped last, so it cannot be confused
with a marker. Text columns (errors) keep text: a non-text stored form is written as
``"$cadenza:" + JSON`` there (and a user text starting with ``"$cadenza:"`` is escaped).

Three ways back, for three readers:

- ``decode(..., ENGINE)``: the real value, loading what a stage moved away. Every read the
  engine acts on (replay, catch-up, another worker after a crash) goes through it.
- ``view``: what an API reader sees without loading anything (a blob marker stays a marker).
- ``decode(..., READER)``: what an API reader sees of the full value (the lazy payload route).

``encode`` is synchronous and cheap when nothing is over the threshold (the engine's commit
loop calls it for every row); what a stage must do before the commit (writing a blob) it
registers on the ``EncodeBatch``, which the store flushes before it writes the rows: a crash
between the two leaves an orphan blob, never a row pointing at a missing one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import fields
from enum import Enum
from typing import NamedTuple, Protocol

from cadenza.application.failpoints import crash_point
from cadenza.domain.events import EVENT_TYPES
from cadenza.domain.json import JSON, JSONObject

MARKER = "$cadenza"
"""The key that makes an object at the top of a slot a marker."""
ESCAPED = "escaped"
"""The marker kind of a user value that had a ``"$cadenza"`` key of its own."""
TEXT_PREFIX = "$cadenza:"
"""A text column's stored text that carries a marker as JSON after this prefix."""

EVENT_PAYLOAD_KEYS = frozenset(
    {"inputs", "vars", "outputs", "output", "error", "detail", "step", "item", "reason"}
)
"""The fields of an event's data that hold payloads (the others are ids, numbers, names)."""


class Audience(Enum):
    """Who a decoded value is for: the engine (real values) or a person reading the API."""

    ENGINE = "engine"
    READER = "reader"


ENGINE = Audience.ENGINE
READER = Audience.READER


class PayloadSlot(NamedTuple):
    """Where a payload is stored: ``field`` is ``table.column`` (``instances.outputs``,
    ``tasks.detail``) or ``events.<EventType>.<key>``. ``workspace_id`` is empty on the
    engine's journal reads (a replay does not know it before reading): a stage must keep in
    its marker what it needs to decode. (A named tuple: one is made per stored value on the
    commit path, and a tuple is the cheapest immutable record to make.)"""

    workspace_id: str
    instance_id: str
    field: str


_EVENT_FIELDS: dict[tuple[str, str], str] = {}
_EVENT_SLOTS: dict[str, tuple[tuple[str, str], ...]] = {}


def event_field(type_name: str, key: str) -> str:
    """``events.<type>.<key>``, made once per pair (the commit path asks for it often)."""
    found = _EVENT_FIELDS.get((type_name, key))
    if found is None:
        found = _EVENT_FIELDS[(type_name, key)] = f"events.{type_name}.{key}"
    return found


def event_slots(type_name: str, data: Mapping[str, JSON]) -> tuple[tuple[str, str], ...]:
    """The payload keys of an event type and their field names, from the event class's
    fields (from its first data for a type the domain does not know): most types have none,
    so their events cost one dictionary lookup on the commit path. (Learning them from the
    first data let a hand-made event without ``error`` hide that key of every later
    ``TaskCompleted`` of the process: stored unencoded, so unredacted.)"""
    found = _EVENT_SLOTS.get(type_name)
    if found is None:
        cls = EVENT_TYPES.get(type_name)
        names = {f.name for f in fields(cls)} if cls is not None else set(data)
        keys = sorted(EVENT_PAYLOAD_KEYS.intersection(names))
        found = _EVENT_SLOTS[type_name] = tuple((k, event_field(type_name, k)) for k in keys)
    return found


class EncodeBatch:
    """What the stages of one write need done before the rows are committed (blob writes),
    keyed so that a value stored in several rows of the batch is written once."""

    def __init__(self) -> None:
        self._before_commit: dict[str, Callable[[], Awaitable[None]]] = {}
        # offloaded values of this batch by object identity: an output is in the task row,
        # the TaskCompleted event and maybe the instance's outputs (kept alive: ids stay valid)
        self.memo: dict[tuple[int, str, str], tuple[JSON, JSON]] = {}

    def before_commit(self, key: str, action: Callable[[], Awaitable[None]]) -> None:
        self._before_commit.setdefault(key, action)

    @property
    def pending(self) -> int:
        return len(self._before_commit)

    async def flush(self) -> None:
        """Run the registered actions (in registration order), then pass the crash point
        between them and the commit."""
        if not self._before_commit:
            return
        actions, self._before_commit = list(self._before_commit.values()), {}
        for action in actions:
            await action()
        crash_point("after-blob-write-before-commit")


class PayloadStage(Protocol):
    """One step of the pipeline. Each method returns its input unchanged when it has
    nothing to do (``decode``/``view`` get markers of other kinds and plain values too)."""

    def encode(self, slot: PayloadSlot, value: JSON, batch: EncodeBatch) -> JSON:
        """The stored form of ``value`` (a previous stage's output); no I/O here: register
        it on ``batch``."""
        ...

    def view(self, slot: PayloadSlot, stored: JSON) -> JSON:
        """What an API reader sees of ``stored`` without loading anything."""
        ...

    async def decode(self, slot: PayloadSlot, stored: JSON, audience: Audience) -> JSON:
        """The value ``stored`` stands for (what the previous stage had encoded)."""
        ...


def is_marker(value: object, kind: str | None = None) -> bool:
    """Whether ``value`` is a marker (of ``kind``, when given)."""
    if type(value) is not dict or MARKER not in value:
        return False
    return kind is None or value[MARKER] == kind


def _unescape(stored: JSON) -> JSON:
    if type(stored) is dict and stored.get(MARKER) == ESCAPED:
        return stored.get("value")
    return stored


class PayloadCodec:
    """The pipeline of stages over every stored payload (see the module's docstring)."""

    def __init__(self, stages: Sequence[PayloadStage] = ()) -> None:
        self.stages: tuple[PayloadStage, ...] = tuple(stages)
        self._reversed = tuple(reversed(self.stages))

    def with_stage(self, stage: PayloadStage, *, first: bool = False) -> PayloadCodec:
        """A codec with ``stage`` added: ``first`` runs it before the others on encode (a
        stage that must see the real value, such as redaction, goes before the blob stage)."""
        stages = (stage, *self.stages) if first else (*self.stages, stage)
        return PayloadCodec(stages)

    # ---- encode (the store's write path) -------------------------------------------------
    def encode(self, slot: PayloadSlot, value: JSON, batch: EncodeBatch) -> JSON:
        """The stored form of ``value``. Empty values (``None``, ``{}``, ``[]``, ``""``,
        ``0``, ``false``) are stored as they are without asking the stages: there is nothing
        in them to move or to hide, and most of the engine's columns hold one."""
        if not value:
            return value
        if type(value) is dict and MARKER in value:
            value = {MARKER: ESCAPED, "value": value}
        for stage in self.stages:
            value = stage.encode(slot, value, batch)
        return value

    def encode_text(self, slot: PayloadSlot, text: str | None, batch: EncodeBatch) -> str | None:
        """A text column's stored text (an error)."""
        if text is None:
            return None
        value: JSON = {MARKER: ESCAPED, "value": text} if text.startswith(TEXT_PREFIX) else text
        stored = value
        for stage in self.stages:
            stored = stage.encode(slot, stored, batch)
        if type(stored) is str:
            return stored
        return TEXT_PREFIX + json.dumps(stored, separators=(",", ":"))

    def encode_event(
        self,
        workspace_id: str,
        instance_id: str,
        type_name: str,
        data: JSONObject,
        batch: EncodeBatch,
    ) -> JSONObject:
        """An event's data with each payload field encoded (in place: ``data`` is the
        event's fresh ``data()``)."""
        for key, name in event_slots(type_name, data):
            value = data.get(key)
            if value:  # empty: stored as it is (``encode``)
                data[key] = self.encode(PayloadSlot(workspace_id, instance_id, name), value, batch)
        return data

    # ---- decode (the engine's reads) and view (the API's reads) --------------------------
    async def decode(self, slot: PayloadSlot, stored: JSON, audience: Audience = ENGINE) -> JSON:
        if type(stored) is not dict or MARKER not in stored:
            return stored
        for stage in self._reversed:
            stored = await stage.decode(slot, stored, audience)
        return _unescape(stored)

    def view(self, slot: PayloadSlot, stored: JSON) -> JSON:
        if type(stored) is not dict or MARKER not in stored:
            return stored
        for stage in self._reversed:
            stored = stage.view(slot, stored)
        return _unescape(stored)

    @staticmethod
    def text_marker(text: str | None) -> JSON:
        """A text column's stored text as the marker it carries (or the text itself)."""
        if text is None or not text.startswith(TEXT_PREFIX):
            return text
        found: JSON = json.loads(text[len(TEXT_PREFIX) :])
        return found

    async def decode_text(
        self, slot: PayloadSlot, text: str | None, audience: Audience = ENGINE
    ) -> str | None:
        if text is None or not text.startswith(TEXT_PREFIX):
            return text
        return _as_text(await self.decode(slot, self.text_marker(text), audience))

    def view_text(self, slot: PayloadSlot, text: str | None) -> JSON:
        """A text column as an API reader sees it: the text, or a marker object."""
        if text is None or not text.startswith(TEXT_PREFIX):
            return text
        return self.view(slot, self.text_marker(text))

    async def decode_event(
        self,
        instance_id: str,
        type_name: str,
        data: Mapping[str, JSON],
        audience: Audience = ENGINE,
    ) -> Mapping[str, JSON]:
        """An event's data with its payload fields decoded (a copy only when one changed)."""
        out: dict[str, JSON] | None = None
        for key in EVENT_PAYLOAD_KEYS.intersection(data):
            stored = data[key]
            if type(stored) is not dict or MARKER not in stored:
                continue
            slot = PayloadSlot("", instance_id, event_field(type_name, key))
            if out is None:
                out = dict(data)
            out[key] = await self.decode(slot, stored, audience)
        return data if out is None else out

    def view_event(
        self, instance_id: str, type_name: str, data: Mapping[str, JSON]
    ) -> Mapping[str, JSON]:
        out: dict[str, JSON] | None = None
        for key in EVENT_PAYLOAD_KEYS.intersection(data):
            stored = data[key]
            if type(stored) is not dict or MARKER not in stored:
                continue
            if out is None:
                out = dict(data)
            out[key] = self.view(PayloadSlot("", instance_id, event_field(type_name, key)), stored)
        return data if out is None else out


def _as_text(value: JSON) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


PLAIN = PayloadCodec()
"""The codec without stages: values are stored as they are (escaped markers aside)."""
