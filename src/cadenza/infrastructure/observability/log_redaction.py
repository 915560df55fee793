"""Redacting PII from log lines (``docs/pii.md``).

A log line does not always know its workspace. When any workspace redacts, every string field
of every line (the message, bound values, the formatted traceback) passes the built-in
detectors; a line written while a task of a workspace runs (``pii_rules.LOG_WORKSPACE``) or
carrying a ``workspace_id`` field passes that workspace's rules, custom ones included. When no
workspace redacts, the processor returns at its first test.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from cadenza.application.pii_rules import LOG_WORKSPACE, RulesCache

_SKIP = frozenset({"timestamp", "level", "logger", "trace_id", "span_id"})
_rules: RulesCache | None = None


def use_rules(rules: RulesCache) -> None:
    """The rules log lines follow: the process's cache (one pipeline per process, configured
    before the runtime; the last runtime built wins)."""
    global _rules
    _rules = rules


def release_rules(rules: RulesCache) -> None:
    """Stop following ``rules`` (its runtime closed), unless another runtime's replaced it."""
    global _rules
    if _rules is rules:
        _rules = None


def redact_event(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    rules = _rules
    if rules is None or not rules.any_enabled:
        return event
    ws = event.get("workspace_id")
    ws = ws if isinstance(ws, str) else LOG_WORKSPACE.get()
    scanner = (rules.scanner(ws) if ws else None) or rules.builtin()
    if scanner is None:
        return event
    for key, value in event.items():
        if key in _SKIP:
            continue
        if isinstance(value, str):
            event[key] = scanner.text(value)[0]
        elif value is not None and not isinstance(value, int | float | bool):
            event[key] = scanner.text(str(value))[0]
    return event
