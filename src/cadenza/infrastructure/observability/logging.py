"""Structured logs: stdlib ``logging`` and structlog both rendered by structlog, one line each.

Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and ``event``, plus whatever
is bound in the context: ``request_id`` (HTTP requests), ``instance_id`` and ``task_id`` (task
attempts) and ``trace_id``/``span_id`` of the current OpenTelemetry span.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace

from cadenza.infrastructure.observability.log_redaction import redact_event

# uvicorn's loggers keep their own handlers unless told otherwise; they are made to propagate
_PROPAGATE = ("uvicorn", "uvicorn.error", "uvicorn.access")
# one INFO line per outbound request (every model call) is noise at any volume
_QUIET = ("httpx2", "httpx", "httpcore", "mcp", "alembic.runtime.plugins")


def add_trace_ids(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """``trace_id`` and ``span_id`` of the current span (when one is recording)."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def configure_logging(
    json: bool = True, level: str | int = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Route all logging through structlog to ``stream`` (stderr): JSON lines, or a readable
    console format when ``json`` is false. Replaces the root logger's handlers; returns the
    handler (tests remove it)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json else _keep,
            redact_event,  # PII, when any workspace redacts (after the traceback is text)
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _PROPAGATE:
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return handler


def _keep(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event
