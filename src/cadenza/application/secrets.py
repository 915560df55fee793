"""Workspace secrets: set by a workspace's admins, sealed at rest, revealed only at egress.

Nobody reads a value back through any interface: ``list`` shows names and who set them when;
``reveal`` is called by the worker for the one task that sends the value somewhere (see
``TaskSecrets``), and every value it reveals is added to that task's redactor first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from cadenza.application.ports import Clock
from cadenza.application.ports_nodes import NodeFailure
from cadenza.application.redaction import Redactor
from cadenza.domain.errors import NotFound
from cadenza.domain.secrets import MAX_PER_WORKSPACE, MAX_VALUE_CHARS, secret_name_reason

ROTATE_BATCH = 100  # rows re-sealed per transaction by ``rotate``
_LINE_BREAKS = str.maketrans("", "", "\t\r\n")


class SecretInvalid(ValueError):
    """A name or value that cannot be stored (422); the message says why."""


class SecretsUnavailable(Exception):
    """No usable key: secrets cannot be sealed or opened (the message says which setting)."""


class SecretMissing(Exception):
    """A referenced secret is not set in the workspace."""


@dataclass(frozen=True)
class SecretInfo:
    """What anyone allowed to manage secrets may see of one: never its value."""

    name: str
    created_at: float
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class SealedSecret:
    """A stored secret: the value encrypted under key ``key_id``."""

    workspace_id: str
    name: str
    key_id: str
    sealed: bytes
    info: SecretInfo


class Cipher(Protocol):
    """Authenticated encryption with a key ring (adapter: ``infrastructure.secrets_crypto``)."""

    def seal(self, plaintext: str, context: bytes) -> tuple[str, bytes]:
        """(id of the current key, ciphertext) bound to ``context``. Raises SecretsUnavailable."""
        ...

    def open(self, key_id: str, sealed: bytes, context: bytes) -> str:
        """The plaintext. Raises SecretsUnavailable (no such key, or tampered data)."""
        ...

    def current_key_id(self) -> str:
        """The id of the key ``seal`` uses. Raises SecretsUnavailable."""
        ...


class SecretStore(Protocol):
    """Sealed secrets per workspace (adapter: ``infrastructure.sql.secrets``)."""

    async def put(self, secret: SealedSecret) -> None:
        """Insert or replace; a replacement keeps the original ``created_at``."""
        ...

    async def sealed(self, workspace_id: str, names: Collection[str]) -> list[SealedSecret]: ...

    async def infos(self, workspace_id: str) -> list[SecretInfo]:
        """The workspace's secrets by name."""
        ...

    async def delete(self, workspace_id: str, name: str) -> bool: ...

    async def sealed_not_under(self, key_id: str, limit: int) -> list[SealedSecret]:
        """Up to ``limit`` secrets (any workspace) sealed under another key than ``key_id``."""
        ...

    async def reseal(self, old: SealedSecret, key_id: str, sealed: bytes) -> bool:
        """Replace ``old``'s ciphertext unless it changed meanwhile (then False)."""
        ...


def _context(workspace_id: str, name: str) -> bytes:
    # Bound into the ciphertext: a sealed value copied to another workspace or name won't open.
    return f"cadenza-secret\x00{workspace_id}\x00{name}".encode()


class WorkspaceSecrets:
    """Set, list, delete and reveal a workspace's secrets; rotate the key they are sealed with."""

    def __init__(self, store: SecretStore, cipher: Cipher, clock: Clock) -> None:
        self._store = store
        self._cipher = cipher
        self._clock = clock

    @property
    def cipher(self) -> Cipher:
        """The key ring (runtime configuration seals its credentials with it too)."""
        return self._cipher

    async def list(self, workspace_id: str) -> list[SecretInfo]:
        return await self._store.infos(workspace_id)

    async def put(self, workspace_id: str, name: str, value: str, by: str) -> SecretInfo:
        """Create or replace ``name``; ``by`` is who set it (shown in the list)."""
        reason = secret_name_reason(name)
        if reason is not None:
            raise SecretInvalid(reason)
        if not value or len(value) > MAX_VALUE_CHARS:
            raise SecretInvalid(f"a secret value has 1 to {MAX_VALUE_CHARS} characters")
        if not value.translate(_LINE_BREAKS).isprintable():  # no NUL, no lone surrogate
            raise SecretInvalid("a secret value is printable text (tabs and line breaks allowed)")
        existing = {s.name: s for s in await self._store.infos(workspace_id)}
        if name not in existing and len(existing) >= MAX_PER_WORKSPACE:
            raise SecretInvalid(f"a workspace holds at most {MAX_PER_WORKSPACE} secrets")
        key_id, sealed = self._cipher.seal(value, _context(workspace_id, name))
        now = self._clock.now()
        before = existing.get(name)
        info = SecretInfo(name, before.created_at if before else now, now, by)
        await self._store.put(SealedSecret(workspace_id, name, key_id, sealed, info))
        return info

    async def delete(self, workspace_id: str, name: str) -> None:
        if not await self._store.delete(workspace_id, name):
            raise NotFound(f"no secret {name!r}")

    async def reveal(self, workspace_id: str, names: Collection[str]) -> dict[str, str]:
        """The values of ``names`` in ``workspace_id``. Raises SecretMissing, SecretsUnavailable."""
        found = {s.name: s for s in await self._store.sealed(workspace_id, names)}
        missing = sorted(set(names) - set(found))
        if missing:
            raise SecretMissing(
                f"secret {', '.join(repr(n) for n in missing)} is not set in this workspace"
            )
        return {
            name: self._cipher.open(s.key_id, s.sealed, _context(workspace_id, name))
            for name, s in found.items()
        }

    async def rotate(self) -> int:
        """Re-seal every secret under the current (first) key; returns how many changed."""
        current = self._cipher.current_key_id()
        done = 0
        while batch := await self._store.sealed_not_under(current, ROTATE_BATCH):
            changed = 0
            for old in batch:
                context = _context(old.workspace_id, old.name)
                plain = self._cipher.open(old.key_id, old.sealed, context)
                key_id, sealed = self._cipher.seal(plain, context)
                if await self._store.reseal(old, key_id, sealed):
                    changed += 1
            done += changed
            if not changed:  # rewritten meanwhile by a process with another key ring: stop
                break
        return done


class SecretVault(Protocol):
    async def reveal(self, workspace_id: str, names: Collection[str]) -> dict[str, str]: ...


class TaskSecrets:
    """What one task's executor gets (``NodeCall.secrets``): reveal within the task's own
    workspace, each value registered with the task's redactor before it is returned."""

    def __init__(self, vault: SecretVault | None, workspace_id: str, redactor: Redactor) -> None:
        self._vault = vault
        self._workspace_id = workspace_id
        self._redactor = redactor

    async def reveal(self, names: Collection[str]) -> Mapping[str, str]:
        if not names:
            return {}
        if self._vault is None:
            raise NodeFailure("secrets are not configured on this server", retryable=False)
        try:
            values = await self._vault.reveal(self._workspace_id, names)
        except SecretMissing as exc:
            raise NodeFailure(str(exc), retryable=False) from exc
        except SecretsUnavailable as exc:
            raise NodeFailure(f"secrets cannot be opened: {exc}", retryable=False) from exc
        for value in values.values():
            self._redactor.add(value)
        return values
