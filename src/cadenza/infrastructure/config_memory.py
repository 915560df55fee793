"""``MemoryConfigStore``: the in-process ``ConfigStore`` (sealed credentials only), used with
the in-memory store (``database_url = "memory://"``)."""

from __future__ import annotations

from dataclasses import replace

from cadenza.application.config_model import ConfigRow


class MemoryConfigStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], ConfigRow] = {}  # frozen values: shared safely

    async def rows(self, kind: str | None = None) -> list[ConfigRow]:
        return [
            self._rows[k] for k in sorted(self._rows) if kind is None or self._rows[k].kind == kind
        ]

    async def row(self, workspace_id: str, kind: str, name: str) -> ConfigRow | None:
        return self._rows.get((workspace_id, kind, name))

    async def put(self, row: ConfigRow) -> ConfigRow:
        key = (row.workspace_id, row.kind, row.name)
        old = self._rows.get(key)
        stored = replace(row, revision=1 if old is None else old.revision + 1)
        self._rows[key] = stored
        return stored

    async def delete(self, workspace_id: str, kind: str, name: str) -> bool:
        return self._rows.pop((workspace_id, kind, name), None) is not None

    async def sealed_not_under(self, key_id: str, limit: int) -> list[ConfigRow]:
        found = [r for _, r in sorted(self._rows.items()) if r.sealed and r.key_id != key_id]
        return found[:limit]

    async def reseal(self, old: ConfigRow, key_id: str, sealed: bytes) -> bool:
        key = (old.workspace_id, old.kind, old.name)
        if self._rows.get(key) != old:
            return False
        self._rows[key] = replace(old, key_id=key_id, sealed=sealed)
        return True
