"""The credentials of stored runtime configuration, sealed at rest.

A row's credentials (a provider's API key, an MCP server's environment values and headers)
are kept apart from its body, as one JSON object sealed with the secrets key ring
(``application.secrets.Cipher``) and bound to the row's scope, kind and name: a sealed value
copied onto another row does not open. Nothing here ever puts a credential in a body, a log
line or a reason returned to a caller (``masked``).
"""

from __future__ import annotations

import json
from dataclasses import replace

from cadenza.application.config_model import ConfigRow
from cadenza.application.ports import Clock
from cadenza.application.secrets import Cipher
from cadenza.domain.json import JSONObject


def _context(workspace_id: str, kind: str, name: str) -> bytes:
    return f"cadenza-config\x00{workspace_id}\x00{kind}\x00{name}".encode()


class ConfigSealer:
    def __init__(self, cipher: Cipher, clock: Clock) -> None:
        self._cipher = cipher
        self._clock = clock

    def row(
        self, scope: str, kind: str, name: str, body: JSONObject, creds: JSONObject, by: str
    ) -> ConfigRow:
        """A new row for ``body``, its non-empty ``creds`` sealed."""
        key_id, sealed = None, None
        if any(v for v in creds.values()):
            plain = json.dumps(creds, separators=(",", ":"))
            key_id, sealed = self._cipher.seal(plain, _context(scope, kind, name))
        return ConfigRow(scope, kind, name, body, key_id, sealed, 0, self._clock.now(), by)

    def open(self, row: ConfigRow) -> JSONObject:
        """The row's credentials. Raises SecretsUnavailable (key gone, data tampered with)."""
        opened = json.loads(self._plain(row))
        return opened if isinstance(opened, dict) else {}

    def current_key_id(self) -> str:
        """The key new seals use (the first of the ring)."""
        return self._cipher.current_key_id()

    def resealed(self, row: ConfigRow) -> ConfigRow | None:
        """The row with its credentials sealed under the current key; None when they are
        already (or there are none)."""
        if row.sealed is None or row.key_id in (None, self._cipher.current_key_id()):
            return None
        context = _context(row.workspace_id, row.kind, row.name)
        key_id, sealed = self._cipher.seal(self._plain(row), context)
        return replace(row, key_id=key_id, sealed=sealed)

    def _plain(self, row: ConfigRow) -> str:
        if row.sealed is None or row.key_id is None:
            return "{}"
        context = _context(row.workspace_id, row.kind, row.name)
        return self._cipher.open(row.key_id, row.sealed, context)


def masked(text: str, values: list[str]) -> str:
    """``text`` without any of the credential ``values`` (a reason goes back to the caller)."""
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text
