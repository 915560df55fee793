"""One group commit's working set: the unit of work, the policy and the static dependencies
every handler, decision and control node is given, plus the instances left to decide."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.application.definitions import Definitions
from cadenza.application.engine.policy import LeaseTerms, Policy
from cadenza.application.engine.unit_of_work import Loaded, Outcome, UnitOfWork
from cadenza.application.ports import Changes, IdGenerator, Templates, Transaction
from cadenza.application.work import Capacity
from cadenza.domain.instance import Stamp


@dataclass(frozen=True)
class BatchDeps:
    definitions: Definitions
    templates: Templates
    new_id: IdGenerator
    terms: LeaseTerms
    capacity: Capacity
    inline_pure: bool = True  # pure nodes run in the decision step (EngineSettings.inline_pure)
    inline_steps: int = 1000  # at most this many per instance and batch (EngineSettings)
    outbox_by: str | None = None  # the engine's holder when the bus crosses processes


class Batch:
    def __init__(
        self, tx: Transaction, deps: BatchDeps, cache: dict[str, Loaded], now: float
    ) -> None:
        self.deps = deps
        self.uow = UnitOfWork(tx, deps.definitions, cache, now, deps.new_id, deps.outbox_by)
        self.policy = Policy(self.uow, deps.terms, deps.capacity, deps.new_id)
        self.dirty: dict[str, Loaded] = {}
        self._inline_left: dict[str, int] = {}  # per instance: pure nodes it may still compute

    def inline_step(self, instance_id: str) -> bool:
        """Whether the instance may compute one more pure node in this batch (and count it)."""
        left = self._inline_left.get(instance_id, self.deps.inline_steps)
        if left <= 0:
            return False
        self._inline_left[instance_id] = left - 1
        return True

    @property
    def stamp(self) -> Stamp:
        return self.uow.stamp

    @property
    def now(self) -> float:
        return self.uow.now

    @property
    def outcome(self) -> Outcome:
        return self.uow.outcome

    def drive(self, lo: Loaded) -> None:
        """Mark an instance for deciding; the batch decides once, not once per command, so a
        thousand timers firing together cost one scheduling pass, not a thousand."""
        self.dirty[lo.inst.id] = lo

    def finish(self) -> Changes:
        """What to save; the work to dispatch after commit goes to ``outcome``."""
        self.uow.outcome.dispatch.extend(self.policy.dispatch())
        return self.uow.collect()

    def rolled_back(self) -> None:
        self.uow.rolled_back()
        self.policy.rolled_back()

    def committed(self) -> None:
        self.uow.committed()
