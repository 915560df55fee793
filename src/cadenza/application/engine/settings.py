"""The engine's settings (filled in from ``cadenza.settings`` by the composition root)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSettings:
    owner: str  # the worker's identity, stable across restarts when configured
    incarnation: str = ""  # this process's run of ``owner``: a restart gets a new one
    lease_s: float = 30.0
    max_requeues: int = 10
    max_crashes: int = 3  # worker deaths an attempt may cause before it fails; 0: no limit
    max_batch: int = 5000
    capacity: int = 10_000  # global in-flight cap of this worker
    sweep_interval_s: float = 1.0
    run_worker: bool = True
    inline_pure: bool = True  # pure nodes run inside the decision step (nodes/pure.py)
    inline_steps: int = 1000  # ... at most this many per instance and batch

    @property
    def holder(self) -> str:
        """Who holds this process's leases: the owner and its incarnation. A restarted worker
        releases the leases of its previous incarnations, never the ones it just took."""
        return f"{self.owner}/{self.incarnation}" if self.incarnation else self.owner

    @property
    def timer_claim_s(self) -> float:
        """How long due timers a sweeper claimed are skipped by the others: the lease. A
        sweeper that dies after its claim delays them by up to this, plus a sweep interval."""
        return self.lease_s
