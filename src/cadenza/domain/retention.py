"""Retention policies: how long finished instances are kept, as a pure value.

A policy names two ages, in seconds since an instance last changed (``updated_at``: when it
finished): completed and cancelled instances older than ``finished_s`` are deleted, failed
ones older than ``failed_s``. ``None`` keeps them. Failed instances can still be retried, so
they are never deleted before finished ones: ``failed_s`` is ``None`` (kept) or at least
``finished_s``. Running instances and instances under a legal hold are never deleted,
whatever their age (the store's query says so; the policy has no say over them).
"""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.domain.errors import DomainError
from cadenza.domain.status import InstanceStatus

MIN_RETENTION_S = 60.0  # a shorter age would delete instances a client is still reading
MAX_RETENTION_S = 100 * 365 * 86400.0  # a hundred years: beyond it, say None (keep)
FINISHED = (InstanceStatus.COMPLETED, InstanceStatus.CANCELLED)  # ``finished_s`` applies
FAILED = (InstanceStatus.FAILED,)  # ``failed_s`` applies


class PolicyInvalid(DomainError):
    """A retention policy out of range or inconsistent; the message says why."""


@dataclass(frozen=True)
class Cutoffs:
    """Instances that last changed before these times are due (None: none are)."""

    finished_before: float | None
    failed_before: float | None

    @property
    def empty(self) -> bool:
        return self.finished_before is None and self.failed_before is None


@dataclass(frozen=True)
class RetentionPolicy:
    """Ages after which finished instances are deleted; the default keeps everything."""

    finished_s: float | None = None
    failed_s: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("finished_s", self.finished_s), ("failed_s", self.failed_s)):
            if value is not None and not MIN_RETENTION_S <= value <= MAX_RETENTION_S:
                raise PolicyInvalid(
                    f"{name} must be between {MIN_RETENTION_S:.0f} and {MAX_RETENTION_S:.0f} "
                    f"seconds, or null to keep them (got {value})"
                )
        if self.failed_s is not None and (
            self.finished_s is None or self.failed_s < self.finished_s
        ):
            raise PolicyInvalid(
                "failed instances are kept at least as long as finished ones: failed_s must be "
                "null or at least finished_s (and finished_s set)"
            )

    @property
    def keeps_everything(self) -> bool:
        return self.finished_s is None and self.failed_s is None

    def cutoffs(self, now: float) -> Cutoffs:
        """What is due at ``now``."""
        return Cutoffs(
            None if self.finished_s is None else now - self.finished_s,
            None if self.failed_s is None else now - self.failed_s,
        )
