"""The payload codec over the rows of a group commit and the rows the store reads back.

``RowEncoder`` turns the row dicts ``rows`` builds into their stored form (in place) and
collects what the codec's stages must do before the commit (``batch``, flushed by the
store before it writes). The readers decode a row's payload columns: ``decode_*`` for the
engine (real values), ``view_*`` for the API (markers stay, escapes are undone).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cadenza.application.payload_blobs import BLOB
from cadenza.application.payloads import (
    ENGINE,
    Audience,
    EncodeBatch,
    PayloadCodec,
    PayloadSlot,
    event_slots,
    is_marker,
)
from cadenza.application.pii_codec import redactions
from cadenza.application.ports import Changes, InstanceRow
from cadenza.domain.events import Event, event_from_data
from cadenza.domain.json import JSON, JSONObject

INSTANCE_JSON = ("inputs", "outputs")
TASK_JSON = ("output", "detail")
TEXT = "error"  # the text column of both tables
_FIELDS = {
    "instances": tuple((c, f"instances.{c}") for c in INSTANCE_JSON),
    "tasks": tuple((c, f"tasks.{c}") for c in TASK_JSON),
}
_ERROR_FIELD = {"instances": "instances.error", "tasks": "tasks.error"}


class RowEncoder:
    """The stored form of one batch's rows."""

    def __init__(self, codec: PayloadCodec, changes: Changes) -> None:
        self.codec = codec
        self.batch = EncodeBatch()
        # a task row does not repeat its instance's workspace: the batch's instance rows do
        self._workspaces = {r.id: r.workspace_id for r in changes.new_instances}
        self._workspaces.update((r.id, r.workspace_id) for r in changes.updated_instances)

    def workspace(self, instance_id: str, data: Mapping[str, Any] | None = None) -> str:
        found = self._workspaces.get(instance_id)
        if found is None and data is not None:
            found = data.get("workspace_id")  # InstanceStarted
        return str(found) if found is not None else ""

    def _columns(
        self, values: dict[str, object], table: str, ws: str, iid: str
    ) -> dict[str, object]:
        codec, batch = self.codec, self.batch
        for column, name in _FIELDS[table]:
            value = values[column]
            if value:  # an empty value is stored as it is: no slot made (the common case)
                values[column] = codec.encode(PayloadSlot(ws, iid, name), value, batch)  # type: ignore[arg-type]
        error = values[TEXT]
        if error is not None:
            slot = PayloadSlot(ws, iid, _ERROR_FIELD[table])
            values[TEXT] = codec.encode_text(slot, str(error), batch)
        return values

    def instance(self, values: dict[str, object]) -> dict[str, object]:
        iid = str(values["id"])
        ws = str(values["workspace_id"])
        return self._columns(values, "instances", ws, iid)

    def task(self, values: dict[str, object]) -> dict[str, object]:
        iid = str(values["instance_id"])
        return self._columns(values, "tasks", self.workspace(iid), iid)

    def event(self, values: dict[str, object]) -> dict[str, object]:
        data: JSONObject = values["data"]  # type: ignore[assignment]
        type_name = str(values["type"])
        if not event_slots(type_name, data):  # most events carry no payload
            return values
        iid = str(values["instance_id"])
        self.codec.encode_event(self.workspace(iid, data), iid, type_name, data, self.batch)
        return values


async def decode_event(
    codec: PayloadCodec,
    type_name: str,
    instance_id: str,
    event_id: str,
    occurred_at: float,
    data: Mapping[str, JSON],
    audience: Audience = ENGINE,
) -> Event:
    """A journal row as the event it recorded, its payloads decoded."""
    found = await codec.decode_event(instance_id, type_name, data, audience)
    return event_from_data(type_name, instance_id, event_id, occurred_at, found)


def view_event(
    codec: PayloadCodec,
    type_name: str,
    instance_id: str,
    event_id: str,
    occurred_at: float,
    data: Mapping[str, JSON],
) -> Event:
    """A journal row as the API shows it: offloaded payloads as markers."""
    found = codec.view_event(instance_id, type_name, data)
    return event_from_data(type_name, instance_id, event_id, occurred_at, found)


async def decode_instance(codec: PayloadCodec, row: InstanceRow) -> InstanceRow:
    """An instance row with real values (the engine's reads)."""
    iid, ws = row.id, row.workspace_id
    inputs = await codec.decode(PayloadSlot(ws, iid, "instances.inputs"), row.inputs)
    outputs = await codec.decode(PayloadSlot(ws, iid, "instances.outputs"), row.outputs)
    error = await codec.decode_text(PayloadSlot(ws, iid, "instances.error"), row.error)
    if inputs is row.inputs and outputs is row.outputs and error is row.error:
        return row
    return _replace_instance(row, inputs, outputs, error)


def view_instance(codec: PayloadCodec, row: InstanceRow) -> InstanceRow:
    """An instance row as the API shows it (an offloaded error is its preview, the marker
    in ``error_payload``; PII redacted, with where in ``redacted``)."""
    iid, ws = row.id, row.workspace_id
    redacted = tuple(
        (column, r)
        for column, stored in (
            ("inputs", row.inputs),
            ("outputs", row.outputs),
            ("error", codec.text_marker(row.error)),
        )
        for r in redactions(stored)
    )
    inputs = codec.view(PayloadSlot(ws, iid, "instances.inputs"), row.inputs)
    outputs = codec.view(PayloadSlot(ws, iid, "instances.outputs"), row.outputs)
    error = codec.view_text(PayloadSlot(ws, iid, "instances.error"), row.error)
    shown, payload = error_view(error)
    if inputs is row.inputs and outputs is row.outputs and shown is row.error:
        return row
    changed = _replace_instance(row, inputs, outputs, shown)
    return replace(changed, redacted=redacted, error_payload=payload)


def error_view(error: JSON) -> tuple[str | None, JSONObject | None]:
    """An error column as shown: its text, or for an offloaded one the preview (ending in
    an ellipsis) and the blob marker (the console's lazy link, ``?expand=payloads``)."""
    if error is None or isinstance(error, str):
        return error, None
    if is_marker(error, BLOB) and isinstance(error, dict):
        return f"{error.get('preview', '')}…", error
    return _text(error), None


def _replace_instance(
    row: InstanceRow, inputs: JSON, outputs: JSON, error: str | None
) -> InstanceRow:
    return replace(row, inputs=inputs, outputs=outputs, error=error)  # type: ignore[arg-type]


def _text(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"))


async def decode_task(
    codec: PayloadCodec, task: JSONObject, audience: Audience = ENGINE
) -> JSONObject:
    iid = str(task.get("instance_id"))
    for c in TASK_JSON:
        task[c] = await codec.decode(PayloadSlot("", iid, f"tasks.{c}"), task.get(c), audience)
    error = task.get(TEXT)
    if isinstance(error, str):
        task[TEXT] = await codec.decode_text(PayloadSlot("", iid, "tasks.error"), error, audience)
    return task


def view_task(codec: PayloadCodec, task: JSONObject) -> JSONObject:
    """A task row as the API shows it: an offloaded error is its preview, the marker in
    ``error_payload``; PII
    redacted, with where in ``redacted`` ([{field, path, detectors}])."""
    iid = str(task.get("instance_id"))
    error_marker = task.get(TEXT)
    task["redacted"] = [
        {"field": column, "path": r.path, "detectors": list(r.detectors)}
        for column, stored in (
            ("output", task.get("output")),
            ("detail", task.get("detail")),
            ("error", codec.text_marker(error_marker if isinstance(error_marker, str) else None)),
        )
        for r in redactions(stored)
    ]
    for c in TASK_JSON:
        task[c] = codec.view(PayloadSlot("", iid, f"tasks.{c}"), task.get(c))
    error = task.get(TEXT)
    task["error_payload"] = None
    if isinstance(error, str):
        shown = codec.view_text(PayloadSlot("", iid, "tasks.error"), error)
        task[TEXT], task["error_payload"] = error_view(shown)
    return task
