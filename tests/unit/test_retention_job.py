"""The retention policy value and the job's loop over a scripted port: which scopes it asks
for with which cutoffs, batches until a short one, pauses between batches, and a lost
conflict ends only its own scope."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cadenza.application.ports import StoreConflict
from cadenza.application.ports_retention import LegalHold, PurgeScope, StoredPolicy
from cadenza.application.retention_job import RetentionJob, RetentionRun, RetentionSettings
from cadenza.domain.retention import Cutoffs, PolicyInvalid, RetentionPolicy

NOW = 1_000_000.0
DAY = 86_400.0


class Clock:
    def now(self) -> float:
        return NOW


class ScriptedStore:
    """Policies as given; each purge answers the next count of its scope's script."""

    def __init__(self, policies: list[StoredPolicy], script: dict[str | None, list[int]]) -> None:
        self._policies = policies
        self._script = script
        self.calls: list[tuple[PurgeScope, Cutoffs, int]] = []

    async def policies(self) -> list[StoredPolicy]:
        return self._policies

    async def purge(self, scope: PurgeScope, cutoffs: Cutoffs, limit: int) -> Mapping[str, int]:
        self.calls.append((scope, cutoffs, limit))
        n = self._script[scope.workspace].pop(0)
        if n < 0:
            raise StoreConflict("deadlock detected")
        return {"instances": n, "events": 10 * n}

    # unused by the job
    async def policy(self, workspace_id: str) -> StoredPolicy | None:
        raise NotImplementedError

    async def put_policy(self, stored: StoredPolicy) -> None:
        raise NotImplementedError

    async def delete_policy(self, workspace_id: str) -> bool:
        raise NotImplementedError

    async def hold(self, workspace_id: str, instance_id: str) -> LegalHold | None:
        raise NotImplementedError

    async def holds(self, workspace_id: str, limit: int) -> list[LegalHold]:
        raise NotImplementedError

    async def instance_exists(self, workspace_id: str, instance_id: str) -> bool:
        raise NotImplementedError

    async def set_hold(self, hold: LegalHold) -> LegalHold | None:
        raise NotImplementedError

    async def clear_hold(self, workspace_id: str, instance_id: str) -> bool:
        raise NotImplementedError


def stored(ws: str, finished_s: float | None, failed_s: float | None = None) -> StoredPolicy:
    return StoredPolicy(ws, RetentionPolicy(finished_s, failed_s), 0.0, "user:u")


async def test_each_policy_is_applied_in_batches_until_a_short_one_then_the_default() -> None:
    store = ScriptedStore(
        [stored("a", DAY, 7 * DAY), stored("keep", None), stored("b", 2 * DAY)],
        {"a": [3, 3, 1], "b": [0], None: [2]},
    )
    pauses: list[float] = []

    async def sleep(s: float) -> None:
        pauses.append(s)

    runs: list[RetentionRun] = []
    settings = RetentionSettings(RetentionPolicy(30 * DAY), batch=3, pause_s=0.25)
    job = RetentionJob(store, Clock(), settings, on_run=runs.append, sleep=sleep)
    run = await job.run_once()
    assert [(c[0], c[1], c[2]) for c in store.calls] == [
        *[(PurgeScope("a"), Cutoffs(NOW - DAY, NOW - 7 * DAY), 3)] * 3,
        (PurgeScope("b"), Cutoffs(NOW - 2 * DAY, None), 3),
        (PurgeScope(None, frozenset({"a", "keep", "b"})), Cutoffs(NOW - 30 * DAY, None), 3),
    ]
    assert pauses == [0.25, 0.25]  # after each full batch only
    assert (run.scopes, run.batches, run.deleted) == (3, 5, {"instances": 9, "events": 90})
    assert runs == [run]
    assert job.last_run is run


async def test_a_lost_conflict_ends_its_scope_and_the_others_still_run() -> None:
    store = ScriptedStore([stored("a", DAY), stored("b", DAY)], {"a": [-1], "b": [1]})
    run = await RetentionJob(store, Clock(), RetentionSettings(RetentionPolicy())).run_once()
    assert (run.conflicts, run.instances, len(store.calls)) == (1, 1, 2)


async def test_without_any_policy_nothing_is_asked() -> None:
    store = ScriptedStore([stored("a", None)], {})
    run = await RetentionJob(store, Clock(), RetentionSettings(RetentionPolicy())).run_once()
    assert (run.scopes, store.calls) == (0, [])


@pytest.mark.parametrize(
    ("finished_s", "failed_s"),
    [(59.0, None), (None, DAY), (7 * DAY, DAY), (DAY, 101 * 365 * DAY)],
)
def test_a_policy_out_of_range_or_deleting_failed_ones_first_is_invalid(
    finished_s: float | None, failed_s: float | None
) -> None:
    with pytest.raises(PolicyInvalid):
        RetentionPolicy(finished_s, failed_s)


def test_a_policy_gives_the_cutoffs_of_a_moment() -> None:
    assert RetentionPolicy(DAY, DAY).cutoffs(NOW) == Cutoffs(NOW - DAY, NOW - DAY)
    assert RetentionPolicy().cutoffs(NOW).empty
    assert RetentionPolicy().keeps_everything


async def test_each_run_logs_one_line_with_what_it_deleted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = ScriptedStore([stored("a", DAY)], {"a": [2]})
    with caplog.at_level("INFO", logger="cadenza.application.retention_job"):
        await RetentionJob(store, Clock(), RetentionSettings(RetentionPolicy())).run_once()
    assert [r.getMessage() for r in caplog.records] == [
        "retention run: 2 instances deleted (events=20, instances=2) in 1 batches over 1 "
        "policies, 0.000 s (longest batch 0.000 s)"
    ]


class AuditScript:
    """Answers each prune with the next count; records the horizons asked for."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.calls: list[tuple[float, int]] = []

    async def prune(self, before: float, limit: int) -> int:
        self.calls.append((before, limit))
        return self.counts.pop(0)


async def test_the_audit_log_is_pruned_on_its_own_horizon_in_batches() -> None:
    store = ScriptedStore([], {})
    audit = AuditScript([3, 3, 1])
    batches: list[Mapping[str, int]] = []
    settings = RetentionSettings(RetentionPolicy(), batch=3, audit_keep_s=30 * DAY)
    job = RetentionJob(store, Clock(), settings, on_batch=batches.append, audit=audit)
    run = await job.run_once()
    assert audit.calls == [(NOW - 30 * DAY, 3)] * 3
    assert run.deleted == {"audit": 7}
    assert batches == [{"audit": 3}, {"audit": 3}, {"audit": 1}]
    assert store.calls == []  # no instance policy: run history untouched


async def test_without_an_audit_horizon_the_audit_log_is_kept() -> None:
    audit = AuditScript([])
    job = RetentionJob(
        ScriptedStore([], {}), Clock(), RetentionSettings(RetentionPolicy()), audit=audit
    )
    await job.run_once()
    assert audit.calls == []
