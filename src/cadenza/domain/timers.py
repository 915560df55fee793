"""Timer kinds: what a durable timer does when it fires (stored as the string value)."""

from __future__ import annotations

from enum import StrEnum


class TimerKind(StrEnum):
    WAIT = "wait"  # a wait node's time came: it completes
    APPROVAL_TIMEOUT = "approval_timeout"  # nobody decided in time: the approval fails
    TASK_TIMEOUT = "task_timeout"  # a control node ran past its timeout: it fails
    INSTANCE_TIMEOUT = "instance_timeout"  # the instance ran past settings.timeout: it fails
