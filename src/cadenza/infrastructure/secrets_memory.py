"""``MemorySecretStore``: the in-process ``SecretStore`` (sealed values only, never plaintext),
used with the in-memory store (``database_url = "memory://"``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from cadenza.application.secrets import SealedSecret, SecretInfo


class MemorySecretStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], SealedSecret] = {}  # frozen values: shared safely

    async def put(self, secret: SealedSecret) -> None:
        key = (secret.workspace_id, secret.name)
        old = self._rows.get(key)
        if old is not None:  # a replacement keeps the original created_at
            secret = replace(secret, info=replace(secret.info, created_at=old.info.created_at))
        self._rows[key] = secret

    async def sealed(self, workspace_id: str, names: Collection[str]) -> list[SealedSecret]:
        return [s for (w, n), s in self._rows.items() if w == workspace_id and n in names]

    async def infos(self, workspace_id: str) -> list[SecretInfo]:
        return sorted((s.info for (w, _), s in self._rows.items() if w == workspace_id), key=_name)

    async def delete(self, workspace_id: str, name: str) -> bool:
        return self._rows.pop((workspace_id, name), None) is not None

    async def sealed_not_under(self, key_id: str, limit: int) -> list[SealedSecret]:
        found = [self._rows[k] for k in sorted(self._rows) if self._rows[k].key_id != key_id]
        return found[: max(limit, 0)]

    async def reseal(self, old: SealedSecret, key_id: str, sealed: bytes) -> bool:
        key = (old.workspace_id, old.name)
        current = self._rows.get(key)
        if current is None or (current.key_id, current.sealed) != (old.key_id, old.sealed):
            return False
        self._rows[key] = replace(current, key_id=key_id, sealed=sealed)
        return True


def _name(info: SecretInfo) -> str:
    return info.name
