"""Workspace secrets: their names, the one way a definition refers to one, and where it may.

A secret is referenced as exactly ``{{ secrets.NAME }}`` inside a string, and only in the
fields that send it somewhere: an ``http`` node's ``url``, ``query`` and ``headers``. The
template engine never sees the value: the executor swaps each reference for an opaque
placeholder before rendering and puts the value in at the egress boundary, after rendering.
So no filter, test or expression can ever act on a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from cadenza.domain.json import JSON

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_VALUE_CHARS = 16_384  # a token, a key or a certificate fits; a secret is not a file store
MAX_PER_WORKSPACE = 500  # secrets one workspace may hold

# The only reference form: {{ secrets.NAME }} (whitespace inside the braces is free).
REFERENCE = re.compile(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
# The fields, per node type, where a reference may appear (anywhere inside their value).
SECRET_FIELDS: Mapping[str, frozenset[str]] = {"http": frozenset({"url", "query", "headers"})}
# "secrets" used as a template variable: not an attribute (``x.secrets``), not inside quotes.
_MENTION = re.compile(r"(?<![\w.'\"])secrets(?![\w'\"])")
_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NAME = re.compile(NAME_PATTERN)


def is_secret_name(name: str) -> bool:
    """Whether ``name`` can name a secret (letters, digits and ``_``, at most 64)."""
    return _NAME.match(name) is not None


def secret_name_reason(name: str) -> str | None:
    """Why ``name`` cannot name a secret, or None."""
    if is_secret_name(name):
        return None
    return (
        "a secret name has letters, digits and '_', starts with a letter or '_' and has at "
        f"most 64 characters, got {name[:80]!r}"
    )


def references(value: JSON) -> set[str]:
    """Names of the secrets referenced (in the only valid form) anywhere inside ``value``."""
    return {m.group(1) for text in _strings(value) for m in REFERENCE.finditer(text)}


def mentions_secrets(text: str, *, expression: bool = False) -> bool:
    """Whether template ``text`` (or a bare ``expression``) uses the variable ``secrets``."""
    if expression:
        return _MENTION.search(text) is not None
    return any(_MENTION.search(code.group(0)) for code in _CODE.finditer(text))


def misused(text: str) -> bool:
    """Whether ``text``, in a field where secrets are allowed, uses ``secrets`` in any way
    other than exact ``{{ secrets.NAME }}`` references."""
    return mentions_secrets(REFERENCE.sub("", text))


def _strings(value: JSON) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
