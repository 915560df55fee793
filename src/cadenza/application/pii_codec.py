"""The PII stage of the payload codec (``application/payloads.py``, docs/payloads.md): what the
store writes for a payload that holds PII, and how it is read back.

Every payload slot the store writes (instance inputs, outputs and error; task output, detail
and error; the payload fields of journal events) passes the stages in order, this one first,
so it sees the real value. In a workspace that redacts, the value is scanned
(``pii_detectors.Scanner``); when nothing is found it passes unchanged (the same object).
Otherwise this stage returns a *sealed marker*: the redacted value for display, the redacted
paths with the detectors that matched, and the original sealed with the deployment's secrets
key ring (AES-256-GCM, ``application/secrets.py``'s ``Cipher``, the workspace id bound as
associated data), so the original never reaches the database, a blob or a log in clear. The
blob stage after it may offload the marker (then the blob holds sealed data too).

Reading back: ``decode`` for the ENGINE opens the original (replays, catch-up, another
worker after a crash); for a READER, and ``view``, give the redacted value.

If the key ring cannot seal at write time (the key was removed after redaction was turned on)
the marker holds the redacted value only: the original is lost, never written in clear, and
an error is logged (docs/pii.md). The API refuses to turn redaction on without a key (409).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import cast

from cadenza.application.payloads import ENGINE, MARKER, Audience, EncodeBatch, PayloadSlot
from cadenza.application.pii_detectors import Scanner
from cadenza.application.pii_rules import RulesCache
from cadenza.application.secrets import Cipher, SecretsUnavailable
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.pii import Redacted

KIND = "sealed"  # this stage's marker kind: {"$cadenza": "sealed", ...}
MAX_FIELDS = 100  # redacted paths recorded per value (``more`` counts the rest)

log = logging.getLogger(__name__)


def _context(workspace_id: str) -> bytes:
    return f"cadenza-pii\x00{workspace_id}".encode()


@dataclass
class _Walk:
    """One value's redacted copy and the paths where something was found."""

    scanner: Scanner
    found: list[Redacted] = field(default_factory=list)
    more: int = 0

    def value(self, value: JSON, path: str) -> JSON:
        """The redacted copy of ``value``: ``value`` itself (no copy) where nothing matched."""
        if isinstance(value, str):
            text, hits = self.scanner.text(value)
            if not hits:
                return value
            self._add(Redacted(path, tuple(hits)))
            return text
        if isinstance(value, list):
            items = [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if isinstance(value, dict):
            out: JSONObject = {}
            same = True
            for k, v in value.items():
                key, hits = self.scanner.text(k)
                if hits:
                    self._add(Redacted(f"{path}.{key} (key)", tuple(hits)))
                shown = out[key] = self.value(v, f"{path}.{key}")
                same = same and not hits and shown is v
            return value if same else out
        return value

    def _add(self, r: Redacted) -> None:
        if len(self.found) < MAX_FIELDS:
            self.found.append(r)
        else:
            self.more += 1


class SealStage:
    """The ``PayloadStage`` of PII redaction (see the module's docstring)."""

    def __init__(self, rules: RulesCache, cipher: Cipher) -> None:
        self.rules = rules
        self._cipher = cipher

    def encode(self, slot: PayloadSlot, value: JSON, batch: EncodeBatch) -> JSON:
        scanner = self.rules.scanner(slot.workspace_id) if slot.workspace_id else None
        if scanner is None or value is None or isinstance(value, bool | int | float):
            return value
        walk = _Walk(scanner)
        shown = walk.value(value, "$")
        if not walk.found:
            return value
        marker: JSONObject = {
            MARKER: KIND,
            "shown": shown,
            "fields": [{"path": r.path, "detectors": list(r.detectors)} for r in walk.found],
            "ws": slot.workspace_id,
        }
        if walk.more:
            marker["more"] = walk.more
        try:
            key_id, sealed = self._cipher.seal(json.dumps(value), _context(slot.workspace_id))
        except SecretsUnavailable as exc:
            log.error("redaction: an original value is not kept (cannot seal: %s)", exc)
            return marker
        marker["key"] = key_id
        marker["sealed"] = base64.b64encode(sealed).decode()
        return marker

    def view(self, slot: PayloadSlot, stored: JSON) -> JSON:
        return stored.get("shown") if _is_sealed(stored) else stored  # type: ignore[union-attr]

    async def decode(self, slot: PayloadSlot, stored: JSON, audience: Audience) -> JSON:
        if not _is_sealed(stored):
            return stored
        marker = cast(JSONObject, stored)
        if audience is not ENGINE:
            return marker.get("shown")
        return self.open(marker)

    def open(self, marker: JSONObject) -> JSON:
        """The original value a sealed marker holds (its redacted value if none was kept)."""
        key_id, sealed, ws = marker.get("key"), marker.get("sealed"), marker.get("ws")
        if not (isinstance(key_id, str) and isinstance(sealed, str) and isinstance(ws, str)):
            return marker.get("shown")  # never sealed: the redacted value is all there is
        plain = self._cipher.open(key_id, base64.b64decode(sealed), _context(ws))
        return cast(JSON, json.loads(plain))


def reseal(cipher: Cipher, marker: JSONObject, current: str) -> JSONObject | None:
    """``marker`` with its original sealed again under key ``current`` (``cadenza secrets
    rotate``); None when it is already, or holds no original. Raises SecretsUnavailable
    when the key that sealed it is not in the ring."""
    key_id, sealed, ws = marker.get("key"), marker.get("sealed"), marker.get("ws")
    if not (isinstance(key_id, str) and isinstance(sealed, str) and isinstance(ws, str)):
        return None
    if key_id == current:
        return None
    plain = cipher.open(key_id, base64.b64decode(sealed), _context(ws))
    new_key, new_sealed = cipher.seal(plain, _context(ws))
    return {**marker, "key": new_key, "sealed": base64.b64encode(new_sealed).decode()}


def is_sealed(value: JSON) -> bool:
    """Whether ``value`` (the top of a slot) is this stage's marker."""
    return _is_sealed(value)


def redacted_copy(rules: RulesCache, workspace_id: str | None, value: JSONObject) -> JSONObject:
    """``value`` redacted, nothing sealed (audit summaries: kept for display only); a value
    of no workspace follows the built-in detectors while any workspace redacts."""
    scanner = (rules.scanner(workspace_id) if workspace_id else None) or rules.builtin()
    if scanner is None:
        return value
    shown = _Walk(scanner).value(value, "$")
    return shown if isinstance(shown, dict) else value


def _is_sealed(value: JSON) -> bool:
    return type(value) is dict and value.get(MARKER) == KIND


def redactions(stored: JSON) -> list[Redacted]:
    """Where a stored value was redacted (from its sealed marker; none for anything else,
    including a blob marker, whose blob holds the sealed marker)."""
    if not _is_sealed(stored):
        return []
    fields = cast(JSONObject, stored).get("fields")
    out: list[Redacted] = []
    for f in fields if isinstance(fields, list) else []:
        if isinstance(f, dict):
            names = f.get("detectors")
            detectors = tuple(str(d) for d in names) if isinstance(names, list) else ()
            out.append(Redacted(str(f.get("path", "")), detectors))
    return out
