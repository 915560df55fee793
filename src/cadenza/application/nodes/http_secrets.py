"""Secret references in an ``http`` node: hidden from the template engine, filled in after.

Before rendering, each ``{{ secrets.NAME }}`` in the node's url, query and headers becomes a
placeholder that carries a per-call random nonce (so neither an input nor a node output can
forge one) and is made only of URL-unreserved characters (so it survives query encoding).
After rendering, ``fill`` reveals the names found in the rendered request and puts the values
in; ``mask`` shows the same request with ``***`` instead, for messages.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from cadenza.application.ports_nodes import NodeCall, NodeFailure
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.secrets import REFERENCE, SECRET_FIELDS, references

_FIELDS = SECRET_FIELDS["http"]
_PLACEHOLDER = re.compile(r"cdz-secret-([0-9a-f]{24})\.([A-Za-z_][A-Za-z0-9_]{0,63})\.")


class Placeholders:
    def __init__(self) -> None:
        self._nonce = ""  # drawn only when the node has a reference (most have none)

    def hide(self, config: JSONObject) -> JSONObject:
        """``config`` with every reference in the secret fields replaced by a placeholder."""
        if not references({k: v for k, v in config.items() if k in _FIELDS}):
            return config
        self._nonce = secrets.token_hex(12)
        return {k: self._hide(v) if k in _FIELDS else v for k, v in config.items()}

    def _hide(self, value: JSON) -> JSON:
        if isinstance(value, str):
            return REFERENCE.sub(lambda m: f"cdz-secret-{self._nonce}.{m.group(1)}.", value)
        if isinstance(value, dict):
            return {k: self._hide(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._hide(v) for v in value]
        return value

    def names(self, rendered: JSONObject) -> set[str]:
        """The secrets the rendered secret fields actually use."""
        if not self._nonce:
            return set()
        return {
            m.group(2)
            for key in _FIELDS
            if key in rendered
            for text in _strings(rendered[key])
            for m in _PLACEHOLDER.finditer(text)
            if m.group(1) == self._nonce
        }

    async def fill(self, rendered: JSONObject, call: NodeCall) -> JSONObject:
        """``rendered`` with the values put in (revealed now, in the call's workspace)."""
        names = self.names(rendered)
        if not names:
            return rendered
        if call.secrets is None:
            raise NodeFailure("http: secrets are not available to this task", retryable=False)
        values = await call.secrets.reveal(names)
        return self._put(rendered, values)

    def mask(self, rendered: JSONObject) -> JSONObject:
        """``rendered`` with ``***`` where a secret goes: what messages may show."""
        return self._put(rendered, {})

    def _put(self, rendered: JSONObject, values: Mapping[str, str]) -> JSONObject:
        def put(m: re.Match[str]) -> str:
            if m.group(1) != self._nonce:
                return m.group(0)  # not ours: a forgery, sent as the text it is
            return values.get(m.group(2), "***")

        def sub(value: JSON) -> JSON:
            if isinstance(value, str):
                return _PLACEHOLDER.sub(put, value)
            if isinstance(value, dict):
                return {k: sub(v) for k, v in value.items()}
            if isinstance(value, list):
                return [sub(v) for v in value]
            return value

        return {k: sub(v) if k in _FIELDS else v for k, v in rendered.items()}


def _strings(value: JSON) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
