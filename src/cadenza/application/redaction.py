"""The one redaction function every string leaving a task passes through.

The main defence is elsewhere: templates never see a secret's value (it is put into the
request after rendering). This is the second line: whatever a task reports (output, error,
journaled steps, streamed tokens, usage, logs) is stripped of the values revealed to it and of
their simple transforms, in case the remote end echoes them back in some form.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from cadenza.domain.json import JSON, JSONObject

MASK = "***"
MIN_TRANSFORMED = 6  # shorter values are masked verbatim only: their transforms are too common


def variants(value: str) -> set[str]:
    """``value`` and the forms it commonly takes on the way back: reversed, JSON-escaped,
    URL-encoded, and base64 (standard and URL-safe, at each of the three byte alignments, so
    that it is found inside a longer encoded string such as ``Basic base64(user:value)``)."""
    if not value:
        return set()
    found = {value}
    if len(value) < MIN_TRANSFORMED:
        return found
    found |= {value[::-1], json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value)}
    raw = value.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        # drop the characters that mix in bits of the bytes before and after the value
        start = (offset * 4 + 2) // 3
        end = len(encoded) - (1 if (offset + len(raw)) % 3 else 0)
        core = encoded[start:end]
        found |= {core, core.replace("+", "-").replace("/", "_")}
    return {v for v in found if len(v) >= min(len(value), MIN_TRANSFORMED)}


class Redactor:
    """Masks the values added to it (and their variants) in strings, lists and mappings."""

    def __init__(self) -> None:
        self._patterns: list[str] = []

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def add(self, value: str) -> None:
        known = set(self._patterns)
        self._patterns.extend(v for v in variants(value) if v not in known)
        self._patterns.sort(key=len, reverse=True)  # a longer form before a part of it

    def text(self, text: str) -> str:
        for pattern in self._patterns:
            if pattern in text:
                text = text.replace(pattern, MASK)
        return text

    def json(self, value: JSON) -> JSON:
        if not self._patterns:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.json(v) for k, v in value.items()}
        return value

    def obj(self, value: JSONObject) -> JSONObject:
        out = self.json(value)
        return out if isinstance(out, dict) else {}
