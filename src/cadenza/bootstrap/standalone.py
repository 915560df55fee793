"""The adapters the command line uses without a runtime: definition and input files read
with their limits (``infrastructure.documents``) and a new key for workspace secrets.

Importing this module loads no store, engine or API: ``cadenza apply`` reads a file and talks
HTTP. It is imported by its own name (``cadenza.bootstrap`` re-exports the builders).
"""

from __future__ import annotations

from cadenza.infrastructure.documents import DocumentError, parse_input_pairs, read_document

__all__ = ["DocumentError", "new_key", "parse_input_pairs", "read_document"]


def new_key() -> str:
    """A new random key for ``CADENZA_SECRETS_KEY`` (see ``secrets_crypto.new_key``)."""
    # imported here: the crypto module and what it imports take ~0.14 s, which the file
    # readers above (``cadenza apply``, ``cadenza start``) do not need
    from cadenza.infrastructure.secrets_crypto import new_key as make

    return make()
