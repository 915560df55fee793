"""Leader leases: at most one holder of a named duty at a time, across processes.

A lease is a row (name, holder, expires_at, acquired_at) in the shared store. Times are the
callers' clocks (epoch seconds, passed in like every engine time), so processes of one
deployment need clocks that agree to well within a lease period (NTP does).

Contract (every adapter passes ``tests/contract/test_leader_leases.py``):
- ``try_acquire`` takes a free lease (none yet, expired at ``now``, or released) or extends
  the caller's own; never one another holder holds past ``now``; two callers racing for a free
  lease: exactly one gets it;
- ``renew`` extends only a lease the caller still holds at ``now``; after it lapsed it answers
  False even when nobody took it, so a holder that missed its renewals re-acquires and starts
  its duty afresh;
- ``release`` frees the caller's lease at once (a standby takes it on its next attempt); a
  release by anyone else changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

RELEASED_AT = 0.0  # expires_at of a released lease: free for anyone at any time


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A lease as one attempt left it."""

    name: str
    holder: str
    expires_at: float
    acquired_at: float  # when ``holder`` took it (renewals keep it)

    def held_by(self, holder: str, now: float) -> bool:
        return self.holder == holder and self.expires_at > now


class LeaderLeases(Protocol):
    async def try_acquire(self, name: str, holder: str, now: float, lease_s: float) -> LeaseView:
        """Take lease ``name`` until ``now + lease_s`` if it is free or ``holder``'s already;
        return the lease as it is afterwards (someone else's when it was not free)."""
        ...

    async def renew(self, name: str, holder: str, now: float, lease_s: float) -> bool:
        """Extend ``holder``'s lease to ``now + lease_s``; False when ``holder`` does not hold
        it at ``now`` (lapsed, released or taken over)."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` holds it."""
        ...
