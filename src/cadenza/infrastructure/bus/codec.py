"""A bus message on the wire: one orjson object, the same for Redis Streams and Kafka."""

from __future__ import annotations

from typing import cast

import orjson

from cadenza.application.ports_bus import BusMessage
from cadenza.domain.json import JSONObject, is_json_object


class MalformedMessage(ValueError):
    """Bytes on the bus that are not a message this version understands (skipped, logged)."""


def encode(message: BusMessage) -> bytes:
    return orjson.dumps(
        {
            "type": message.type,
            "instance_id": message.instance_id,
            "workspace_id": message.workspace_id,
            "seq": message.seq,
            "time": message.time,
            "data": message.data,
        }
    )


def decode(raw: bytes) -> BusMessage:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not is_json_object(value):
        raise MalformedMessage("not a JSON object")
    obj = cast(JSONObject, value)
    kind, instance, workspace = obj.get("type"), obj.get("instance_id"), obj.get("workspace_id")
    seq, time, data = obj.get("seq"), obj.get("time", 0.0), obj.get("data", {})
    if not (isinstance(kind, str) and isinstance(instance, str) and isinstance(workspace, str)):
        raise MalformedMessage("type, instance_id and workspace_id must be strings")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise MalformedMessage("seq must be an integer")
    if not isinstance(time, int | float) or isinstance(time, bool):
        raise MalformedMessage("time must be a number")
    if not isinstance(data, dict):
        raise MalformedMessage("data must be an object")
    return BusMessage(kind, instance, workspace, seq, float(time), data)
