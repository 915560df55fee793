"""The orphan blob collector: offloaded payloads whose instance no longer exists.

Blobs are written before the rows that refer to them and deleted after the rows that did
(``payloads``, ``retention``), so a crash leaves orphans, never dangling references: the blobs
of a batch that never committed (an instance whose start was lost has none of its rows), or
of an instance whose rows retention deleted just before the process died. Both are whole
instance prefixes with no ``instances`` row. The collector walks the blob store's instance
prefixes a page per call (a cursor that wraps around), and deletes those whose instance is
not in the database and whose newest blob is older than ``min_age_s`` (a day: an instance
being started right now has blobs but no row yet). The orphans of a batch lost from an
instance that still exists go with that instance's prefix when retention deletes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import unquote

from cadenza.application.ports import Clock
from cadenza.application.ports_blobs import BlobStore

DAY_S = 86_400.0
Present = Callable[[Sequence[str]], Awaitable[set[str]]]
"""Which of these instance ids have an ``instances`` row."""


class BlobCollector:
    def __init__(
        self,
        blobs: BlobStore,
        present: Present,
        clock: Clock,
        *,
        min_age_s: float = DAY_S,
        page: int = 500,
    ) -> None:
        self._blobs = blobs
        self._present = present
        self._clock = clock
        self.min_age_s = min_age_s
        self.page = page
        self._cursor = ""

    async def collect_once(self) -> int:
        """One page of instance prefixes checked; the blobs deleted (the next call goes on
        after this page, and starts over after the last one)."""
        found = await self._blobs.instances(self._cursor, self.page)
        self._cursor = found[-1][0] if len(found) >= self.page else ""
        cutoff = self._clock.now() - self.min_age_s
        old = {prefix: _instance(prefix) for prefix, newest in found if newest < cutoff}
        if not old:
            return 0
        alive = await self._present(sorted(set(old.values())))
        deleted = 0
        for prefix, instance_id in old.items():
            if instance_id not in alive:
                deleted += await self._blobs.delete_prefix(prefix)
        return deleted


def _instance(prefix: str) -> str:
    """The instance id of ``<workspace>/<instance>/`` (its parts are percent-quoted)."""
    return unquote(prefix.split("/")[1])
