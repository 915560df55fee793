"""The key ring that seals workspace secrets: AES-256-GCM, keys from the environment or a file.

Keys are 32 random bytes written as URL-safe base64 (``cadenza secrets new-key`` prints one).
Several keys may be given (comma-separated in ``CADENZA_SECRETS_KEY``, one a line in the key
file): the first seals, any of them opens, so a key is rotated by putting the new one first,
running ``cadenza secrets rotate`` and then removing the old one. A key is never stored in the
database: each sealed value records only the id (a hash prefix) of the key that sealed it.

Zero setup (SQLite, neither setting given): a key file is generated next to the database file
with mode 0600 on the first secret that is set, and read from there afterwards.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cadenza.application.secrets import SecretsUnavailable

log = logging.getLogger(__name__)
KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = b"\x01"  # leading byte of every sealed value: the format, for a future change


def new_key() -> str:
    """A fresh key, as written in the environment or a key file."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"cadenza-secrets-key\x00" + key).hexdigest()[:16]


def parse_keys(text: str, source: str) -> list[bytes]:
    """Keys from ``text`` (comma- or line-separated; ``#`` starts a comment line)."""
    keys: list[bytes] = []
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    for raw in ",".join(lines).split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            key = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"{source}: a secrets key is {KEY_BYTES} bytes in URL-safe base64 "
                "(make one with `cadenza secrets new-key`)"
            )
        keys.append(key)
    return keys


class KeyRing:
    """``Cipher`` over a list of keys; with ``generate`` set, the key file made on first use."""

    def __init__(
        self, keys: list[bytes], *, generate: Path | None = None, missing: str = ""
    ) -> None:
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self._current = key_id(keys[0]) if keys else None
        self._generate = generate
        self._missing = missing or "no secrets key: set CADENZA_SECRETS_KEY or _KEY_FILE"

    def current_key_id(self) -> str:
        if self._current is None and self._generate is not None:
            self._adopt(_create_key_file(self._generate))
        if self._current is None:
            raise SecretsUnavailable(self._missing)
        return self._current

    def seal(self, plaintext: str, context: bytes) -> tuple[str, bytes]:
        current = self.current_key_id()
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._keys[current].encrypt(nonce, plaintext.encode(), _VERSION + context)
        return current, _VERSION + nonce + sealed

    def open(self, key_id: str, sealed: bytes, context: bytes) -> str:
        aead = self._keys.get(key_id)
        if aead is None:
            raise SecretsUnavailable(
                f"the key {key_id} that sealed this secret is not in the key ring "
                "(CADENZA_SECRETS_KEY / CADENZA_SECRETS_KEY_FILE)"
            )
        version, nonce, body = sealed[:1], sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return aead.decrypt(nonce, body, version + context).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretsUnavailable("a sealed secret does not open: altered or moved") from exc

    def _adopt(self, keys: list[bytes]) -> None:
        for k in keys:
            self._keys.setdefault(key_id(k), AESGCM(k))
        self._current = key_id(keys[0])


def _create_key_file(path: Path) -> list[bytes]:
    """Write a new key file (mode 0600), unless another process did first: then read it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("# Cadenza secrets key: keep it, and back it up apart from the database\n")
            f.write(new_key() + "\n")
        with contextlib.suppress(FileExistsError):  # link() never replaces: first one wins
            os.link(tmp, path)
            log.warning("generated the secrets key file %s (mode 0600): back it up", path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> list[bytes]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"secrets key file {path}: {exc.strerror}") from exc
    if path.stat().st_mode & 0o077:
        log.warning("secrets key file %s is readable by others: chmod 600 it", path)
    keys = parse_keys(text, f"secrets key file {path}")
    if not keys:
        raise ValueError(f"secrets key file {path} holds no key")
    return keys


def load_keyring(key: str, key_file: str, default_file: Path | None) -> KeyRing:
    """From ``CADENZA_SECRETS_KEY``, else ``CADENZA_SECRETS_KEY_FILE``, else the generated file
    next to a SQLite database (``default_file``); else a ring that refuses with the reason."""
    if key.strip():
        return KeyRing(parse_keys(key, "CADENZA_SECRETS_KEY"))
    if key_file:
        return KeyRing(_read_key_file(Path(key_file)))
    if default_file is not None:
        if default_file.exists():
            return KeyRing(_read_key_file(default_file))
        return KeyRing([], generate=default_file)
    return KeyRing(
        [],
        missing="secrets need a key with this database: set CADENZA_SECRETS_KEY or "
        "CADENZA_SECRETS_KEY_FILE",
    )
