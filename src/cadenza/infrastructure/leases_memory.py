"""``MemoryLeaderLeases``: leader leases of one process (the ``memory://`` store's), and the
reference the SQL adapter is compared with in ``tests/contract/test_leader_leases.py``."""

from __future__ import annotations

import dataclasses

from cadenza.application.ports_leases import RELEASED_AT, LeaseView


class MemoryLeaderLeases:
    def __init__(self) -> None:
        self._leases: dict[str, LeaseView] = {}

    async def try_acquire(self, name: str, holder: str, now: float, lease_s: float) -> LeaseView:
        current = self._leases.get(name)
        if current is None or current.expires_at <= now or current.holder == holder:
            kept = current is not None and current.held_by(holder, now)
            acquired_at = current.acquired_at if current is not None and kept else now
            current = LeaseView(name, holder, now + lease_s, acquired_at)
            self._leases[name] = current
        return current

    async def renew(self, name: str, holder: str, now: float, lease_s: float) -> bool:
        current = self._leases.get(name)
        if current is None or not current.held_by(holder, now):
            return False
        self._leases[name] = dataclasses.replace(current, expires_at=now + lease_s)
        return True

    async def release(self, name: str, holder: str) -> None:
        current = self._leases.get(name)
        if current is not None and current.holder == holder:
            self._leases[name] = dataclasses.replace(current, expires_at=RELEASED_AT)
