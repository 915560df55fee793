"""The lease side of the engine's commands: a worker's report is fenced by its lease token, and
the sweeper's ``ExpireLease`` decides what a lapsed lease costs its task.

Requeue accounting (docs/reliability.md): a lease that *expired* (its holder stalled or never
came back) is charged toward ``max_requeues``; one *released* by a clean stop costs nothing; one
whose holder's process *died* (a restart under the same identity marked it ``CRASHED``) costs
nothing toward ``max_requeues`` but counts toward ``max_crashes`` of the attempt, so a task that
kills its worker does not run forever.
"""

from __future__ import annotations

from cadenza.application.engine.batch import Batch
from cadenza.application.engine.unit_of_work import Loaded
from cadenza.application.ports import CRASHED, RELEASED
from cadenza.domain import commands as cmd
from cadenza.domain.commands import Outcome
from cadenza.domain.status import TaskStatus
from cadenza.domain.tasks import Task


def fenced(b: Batch, task_id: str, token: str, attempt: int | None = None) -> bool:
    """True when ``token`` still holds the lease: a zombie's late report is dropped."""
    lease = b.uow.leases.get(task_id)
    return (
        lease is not None
        and lease.status == TaskStatus.RUNNING.value
        and lease.lease_token == token
        and (attempt is None or lease.attempt == attempt)
    )


async def expire(b: Batch, lo: Loaded, c: cmd.ExpireLease) -> Outcome:
    """Re-queue (or fail) the task of a lease the sweeper saw lapsed, unless it was renewed
    or moved on meanwhile; what it costs the task depends on how the lease lapsed."""
    lease = b.uow.leases.get(c.task_id)
    if not fenced(b, c.task_id, c.lease_token) or lease is None:
        return Outcome.STALE
    if lease.lease_expires_at is None or lease.lease_expires_at > b.now:
        return Outcome.RENEWED
    task = lo.inst.task(c.task_id)
    if not task.active:
        return Outcome.STALE
    if lease.lease_expires_at == RELEASED:  # its holder stopped: not the task's fault
        reason = f"released by {lease.leased_to} (stopped)"
        b.policy.requeue(lo, task, reason, charged=False)
        return Outcome.RELEASED
    if lease.lease_expires_at == CRASHED:  # its holder's process died: maybe the task's fault
        return _crashed(b, lo, task, lease.leased_to)
    requeues = task.detail.get("requeues", 0)
    if isinstance(requeues, int) and requeues >= b.deps.terms.max_requeues:
        error = f"lease expired {requeues + 1} times: the worker running it was lost"
        b.policy.fail_task(lo, task, error, retryable=False)
        return Outcome.FAILED
    b.policy.requeue(lo, task, f"lease of {lease.leased_to} expired", charged=True)
    return Outcome.REQUEUED


def _crashed(b: Batch, lo: Loaded, task: Task, holder: str | None) -> Outcome:
    """The worker process holding ``task`` died and came back under the same identity. One
    death is no proof (an OOM kill of a busy worker, a deploy's SIGKILL), so the task is
    re-queued uncharged; but a task that kills its worker would otherwise run forever, so
    ``max_crashes`` deaths during one attempt fail it, through its node's retry policy."""
    crashes = _int(task.detail.get("crashes")) + 1
    limit = b.deps.terms.max_crashes
    if limit and crashes >= limit:
        error = (
            f"the worker process died {crashes} times while running this task; "
            "it may crash its worker"
        )
        b.policy.fail_task(lo, task, error, retryable=True)
        return Outcome.FAILED
    reason = f"the process of {holder} died holding it (worker death {crashes} of this attempt)"
    b.policy.requeue(lo, task, reason, charged=False, crashed=True)
    return Outcome.RELEASED


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
