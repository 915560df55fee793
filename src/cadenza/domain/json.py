"""The JSON value type shared by definitions, inputs, outputs and events."""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
JSONObject: TypeAlias = "dict[str, JSON]"


def is_json_object(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)
