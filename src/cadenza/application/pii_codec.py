"""What the store writes for a payload that holds PII, and how it is read back.

On the store's write paths (instance inputs, outputs and error; task output, detail and
error; journal event data), a value of a workspace that redacts is scanned
(``pii_detectors.Scanner``). When nothing is found it is stored as it is. Otherwise it is stored
as a *marker*: the redacted value for display, the list of redacted paths with the detectors
that matched, and the original sealed with the deployment's secrets key ring (AES-256-GCM,
``application/secrets.py``'s ``Cipher``, the workspace id bound as associated data), so the
original never reaches the database file in clear.

Reading back: the engine (replays, catch-up on another worker after a crash) and the store's
own reads ``open`` a marker to the original; the API's reads show the redacted value and the
list (``shown``). A JSON column holds the marker as an object under ``MARK``; a text column
(errors) as ``TEXT_MARK`` followed by the marker's JSON.

If the key ring cannot seal at write time (the key was removed after redaction was turned on)
the marker holds the redacted value only: the original is lost, never written in clear, and
an error is logged (``docs/pii.md``).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import cast

from cadenza.application.pii_detectors import Scanner
from cadenza.application.pii_rules import RulesCache
from cadenza.application.secrets import Cipher, SecretsUnavailable
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.pii import Redacted

MARK = "$cadenza.pii"
TEXT_MARK = "\u2063cadenza.pii:"  # an invisible separator first: no error message starts so
MAX_FIELDS = 100  # redacted paths recorded per value (the count says how many more)

log = logging.getLogger(__name__)


def _context(workspace_id: str) -> bytes:
    return f"cadenza-pii\x00{workspace_id}".encode()


@dataclass
class _Walk:
    scanner: Scanner
    found: list[Redacted]
    more: int = 0

    def value(self, value: JSON, path: str) -> JSON:
        if isinstance(value, str):
            text, hits = self.scanner.text(value)
            if hits:
                self._add(Redacted(path, tuple(hits)))
            return text
        if isinstance(value, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            out: JSONObject = {}
            for k, v in value.items():
                key, hits = self.scanner.text(k)
                if hits:
                    self._add(Redacted(f"{path} (key)", tuple(hits)))
                out[key] = self.value(v, f"{path}.{k if not hits else key}")
            return out
        return value

    def _add(self, r: Redacted) -> None:
        if len(self.found) < MAX_FIELDS:
            self.found.append(r)
        else:
            self.more += 1


class PiiCodec:
    """Seal on write, open for the engine, show for the API (see the module's docstring)."""

    def __init__(self, rules: RulesCache, cipher: Cipher) -> None:
        self.rules = rules
        self._cipher = cipher

    @property
    def active(self) -> bool:
        """Whether any workspace redacts now (otherwise writes pass through untouched)."""
        return self.rules.any_enabled

    async def fresh(self) -> None:
        await self.rules.fresh()

    # ---- writing ---------------------------------------------------------------------------
    def encode(self, workspace_id: str, value: JSON) -> JSON:
        """``value`` as it is stored: itself, or a marker."""
        marker = self._marker(workspace_id, value)
        return value if marker is None else {MARK: marker}

    def encode_text(self, workspace_id: str, text: str | None) -> str | None:
        if text is None:
            return None
        marker = self._marker(workspace_id, text)
        return text if marker is None else TEXT_MARK + json.dumps(marker, separators=(",", ":"))

    def _marker(self, workspace_id: str, value: JSON) -> JSONObject | None:
        scanner = self.rules.scanner(workspace_id)
        if scanner is None or value is None:
            return None
        walk = _Walk(scanner, [])
        shown = walk.value(value, "$")
        if not walk.found:
            return None
        marker: JSONObject = {
            "ws": workspace_id,
            "shown": shown,
            "fields": [{"path": r.path, "detectors": list(r.detectors)} for r in walk.found],
        }
        if walk.more:
            marker["more"] = walk.more
        try:
            key_id, sealed = self._cipher.seal(json.dumps(value), _context(workspace_id))
        except SecretsUnavailable as exc:
            log.error("redaction: the original value is not kept (cannot seal: %s)", exc)
            return marker
        marker["key"] = key_id
        marker["sealed"] = base64.b64encode(sealed).decode()
        return marker

    # ---- reading ---------------------------------------------------------------------------
    def open(self, value: JSON) -> JSON:
        """The original of a stored value (the engine's read path)."""
        marker = _marker_of(value)
        return value if marker is None else self._original(marker)

    def open_object(self, value: JSON) -> JSONObject:
        """``open`` of a value stored from a mapping (event data, inputs)."""
        found = self.open(value)
        return found if isinstance(found, dict) else {}

    def open_text(self, text: str | None) -> str | None:
        marker = _text_marker_of(text)
        if marker is None:
            return text
        original = self._original(marker)
        return original if isinstance(original, str) else json.dumps(original)

    def _original(self, marker: JSONObject) -> JSON:
        key_id, sealed, ws = marker.get("key"), marker.get("sealed"), marker.get("ws")
        if not (isinstance(key_id, str) and isinstance(sealed, str) and isinstance(ws, str)):
            return marker.get("shown")  # never sealed: the redacted value is all there is
        plain = self._cipher.open(key_id, base64.b64decode(sealed), _context(ws))
        return cast(JSON, json.loads(plain))


def shown(value: JSON) -> tuple[JSON, list[Redacted]]:
    """What the API shows of a stored value, and which paths were redacted (no key needed)."""
    marker = _marker_of(value)
    if marker is None:
        return value, []
    return marker.get("shown"), _fields(marker)


def shown_text(text: str | None) -> tuple[str | None, list[Redacted]]:
    marker = _text_marker_of(text)
    if marker is None:
        return text, []
    value = marker.get("shown")
    return (value if isinstance(value, str) else json.dumps(value)), _fields(marker)


def _fields(marker: JSONObject) -> list[Redacted]:
    out: list[Redacted] = []
    fields = marker.get("fields")
    for f in fields if isinstance(fields, list) else []:
        if isinstance(f, dict):
            detectors = f.get("detectors")
            names = tuple(str(d) for d in detectors) if isinstance(detectors, list) else ()
            out.append(Redacted(str(f.get("path", "")), names))
    return out


def _marker_of(value: JSON) -> JSONObject | None:
    if isinstance(value, dict) and len(value) == 1:
        marker = value.get(MARK)
        if isinstance(marker, dict):
            return marker
    return None


def _text_marker_of(text: str | None) -> JSONObject | None:
    if text is None or not text.startswith(TEXT_MARK):
        return None
    try:
        marker = json.loads(text[len(TEXT_MARK) :])
    except ValueError:
        return None
    return marker if isinstance(marker, dict) else None
