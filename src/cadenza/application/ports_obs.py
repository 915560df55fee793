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
    def open_instance(self, origin: contextvars.Context) -> str | None:
        """An instance is about to be started by the submitter of ``origin`` (an HTTP request,
        the CLI): open its span, in the starter's trace, and return its W3C ``traceparent``,
        which the commit stores on the instance (None: not traced)."""
        ...

    def instance_started(self, instance_id: str, trace_context: str | None) -> None:
        """The start committed: the span opened for ``trace_context`` is the instance's."""
        ...

    def task(
        self,
        instance_id: str,
        task_id: str,
        attributes: Mapping[str, SpanValue],
        trace_context: str | None = None,
    ) -> AbstractContextManager[None]:
        """Around one task attempt: a span, a child of the instance's (the instance's stored
        ``trace_context`` when this process did not open it), with the instance and task ids
        in the log context."""
        ...


class NoTracer:
    """Records nothing."""

    def open_instance(self, origin: contextvars.Context) -> str | None:
        return None

    def instance_started(self, instance_id: str, trace_context: str | None) -> None:
        return None

    def task(
        self,
        instance_id: str,
        task_id: str,
        attributes: Mapping[str, SpanValue],
        trace_context: str | None = None,
    ) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
