"""The tracing seam of the engine: spans and log context without a tracing library here.

The OpenTelemetry adapter lives in ``infrastructure/observability/tracing.py``; ``NoTracer``
is the default, so an engine built without one (tests, benchmarks) pays nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Protocol

SpanValue = str | int | float | bool


class Tracer(Protocol):
    def instance_started(self, instance_id: str, origin: contextvars.Context) -> None:
        """A new instance committed; ``origin`` is the context of whoever submitted the start
        (an HTTP request, the CLI), so the instance's span can join the starter's trace."""
        ...

    def task(
        self, instance_id: str, task_id: str, attributes: Mapping[str, SpanValue]
    ) -> AbstractContextManager[None]:
        """Around one task attempt: a span (a child of the instance's, when this process
        knows it) with the instance and task ids in the log context."""
        ...


class NoTracer:
    """Records nothing."""

    def instance_started(self, instance_id: str, origin: contextvars.Context) -> None:
        return None

    def task(
        self, instance_id: str, task_id: str, attributes: Mapping[str, SpanValue]
    ) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
