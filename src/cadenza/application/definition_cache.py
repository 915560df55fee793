"""Where definition versions and latest-version pointers are cached.

- Versions (``(workspace, process id, version)``): their content never changes once stored,
  so a process keeps each one it read and also puts it in the shared cache, from which a
  cold process (a restarted worker) reads it instead of the database. Drafts are not cached.
  The cached ``status`` is the one of the first reading: the readers of this path (the
  engine loading a pinned version, plans) do not decide on it.
- Latest published versions (``(workspace, process id)``): kept per process for at most
  ``refresh_s``, dropped at once in every process when a version is published or archived
  (``changed``: locally, then announced over the bus).

Keys carry the workspace, and an entry is returned only to a reader of its workspace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cadenza.application.invalidation import Announcer
from cadenza.application.ports import Clock, StoredDefinition
from cadenza.application.ports_cache import SharedCache, cache_key, get_json, set_json
from cadenza.domain.json import JSON

VERSION_TTL_S = 7 * 86_400.0  # versions are immutable: the TTL only gives Redis memory back
Load = Callable[[], Awaitable[StoredDefinition | None]]


class DefinitionCache:
    def __init__(
        self,
        shared: SharedCache | None,
        clock: Clock,
        refresh_s: float = 1.0,
        announcer: Announcer | None = None,
    ) -> None:
        self._shared = shared if shared is not None and shared.shared else None
        self._clock = clock
        self._refresh_s = refresh_s
        self._announcer = announcer
        self._versions: dict[tuple[str, str, int], StoredDefinition] = {}
        self._latest: dict[tuple[str, str], tuple[float, StoredDefinition]] = {}

    async def version(
        self, workspace: str, process_id: str, version: int, load: Load
    ) -> StoredDefinition | None:
        """The version from this process, the shared cache, or ``load`` (the database). A
        version of another workspace is returned as ``load`` gives it, and never cached."""
        key = (workspace, process_id, version)
        found = self._versions.get(key)
        if found is not None:
            return found
        if self._shared is not None:
            found = _decode(await get_json(self._shared, _key(*key)), key)
            if found is not None:
                self._versions[key] = found
                return found
        stored = await load()
        if stored is None or (stored.workspace_id, stored.process_id, stored.version) != key:
            return stored
        if stored.status != "draft":
            self._versions[key] = stored
            if self._shared is not None:
                await set_json(self._shared, _key(*key), _encode(stored), VERSION_TTL_S)
        return stored

    async def latest(self, workspace: str, process_id: str, load: Load) -> StoredDefinition | None:
        """The latest published version of the process as ``load`` finds it, at most
        ``refresh_s`` old (or invalidated sooner by ``changed`` anywhere)."""
        now = self._clock.now()
        hit = self._latest.get((workspace, process_id))
        if hit is not None and now - hit[0] < self._refresh_s:
            return hit[1]
        stored = await load()
        if stored is not None and stored.workspace_id == workspace:
            self._latest[(workspace, process_id)] = (now, stored)
        return stored

    def forget(self, workspace: str, process_id: str) -> None:
        """Drop what this process holds of the process (its status may have changed)."""
        self._latest.pop((workspace, process_id), None)
        for key in [k for k in self._versions if k[:2] == (workspace, process_id)]:
            del self._versions[key]

    def forget_all(self) -> None:
        self._latest.clear()

    async def changed(self, workspace: str, process_id: str) -> None:
        """A version of the process was published or changed status: drop it everywhere."""
        self.forget(workspace, process_id)
        if self._announcer is not None:
            await self._announcer.definitions_changed(workspace, process_id)


def _key(workspace: str, process_id: str, version: int) -> str:
    return cache_key("definition", workspace, process_id, version)


def _encode(d: StoredDefinition) -> JSON:
    return {
        "process_id": d.process_id,
        "version": d.version,
        "content_hash": d.content_hash,
        "status": d.status,
        "document": d.document,
        "created_at": d.created_at,
        "workspace_id": d.workspace_id,
    }


def _decode(value: JSON | None, key: tuple[str, str, int]) -> StoredDefinition | None:
    """The entry, if it is well formed and is the version asked for (else: a miss)."""
    if not isinstance(value, dict):
        return None
    pid, digest = value.get("process_id"), value.get("content_hash")
    status, workspace = value.get("status"), value.get("workspace_id")
    version, created, document = (
        value.get("version"),
        value.get("created_at"),
        value.get("document"),
    )
    if not (
        isinstance(pid, str)
        and isinstance(digest, str)
        and isinstance(status, str)
        and isinstance(workspace, str)
        and isinstance(version, int)
        and isinstance(created, (int, float))
        and isinstance(document, dict)
    ):
        return None
    if (workspace, pid, version) != key:
        return None
    return StoredDefinition(pid, version, digest, status, document, float(created), workspace)
