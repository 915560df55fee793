"""The token signing key as a file: read from ``CADENZA_TOKEN_SECRET_FILE``, or made once
beside the SQLite database (zero-setup) and kept there, readable by its owner only.

The key is never stored in the database: whoever can read a copy of the database must not
be able to mint a system admin's token with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

KEY_FILE_NAME = "token-secret"  # beside the SQLite file, in its (0700) directory
MIN_SECRET = 32  # characters


def read_key_file(path: Path) -> str:
    """The key in ``path`` (surrounding whitespace ignored); ValueError when it is too short
    or cannot be read. Warns when others than the owner may read it."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"token secret file {path}: {exc}") from exc
    if len(text) < MIN_SECRET:
        raise ValueError(f"token secret file {path}: at least {MIN_SECRET} characters needed")
    if mode & 0o077:
        log.warning("token secret file %s has mode %o: make it 0600", path, mode)
    return text


def ensure_key_file(path: Path) -> str:
    """Read the key file, making it first (mode 0600) when there is none. The file appears
    complete or not at all (written aside, then linked), so processes starting together
    agree on one key."""
    if path.exists():
        return read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(aside, path)
    finally:
        aside.unlink()
    return read_key_file(path)
