"""``MemoryRedactionStore``: the in-process ``RedactionStore`` (with ``memory://``)."""

from __future__ import annotations

from cadenza.application.pii_rules import StoredRules


class MemoryRedactionStore:
    def __init__(self) -> None:
        self._rows: dict[str, StoredRules] = {}  # frozen values: shared safely

    async def rules(self, workspace_id: str) -> StoredRules | None:
        return self._rows.get(workspace_id)

    async def all_rules(self) -> list[StoredRules]:
        return [self._rows[k] for k in sorted(self._rows)]

    async def put_rules(self, stored: StoredRules) -> None:
        self._rows[stored.workspace_id] = stored
