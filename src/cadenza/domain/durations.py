"""Durations in definitions: ``250ms``, ``30s``, ``5m``, ``1h30m``, ``2d`` or seconds."""

from __future__ import annotations

import functools
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")

MAX_DURATION_S = 366 * 86400.0


class DurationError(ValueError):
    """A duration that cannot be read or is out of range."""


def parse_duration(value: object) -> float:
    """Return seconds for a duration; raise DurationError with the reason."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration like '30s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"expected a duration like '30s', got {type(value).__name__}")
    return _bounded(value, seconds)


@functools.lru_cache(maxsize=1024)
def _parse_text(value: str) -> float:
    text = value.strip().lower().replace(" ", "")
    if not _WHOLE.match(text):
        raise DurationError(
            f"cannot read duration {value!r}: use a number with a unit "
            "(ms, s, m, h, d), e.g. '30s' or '1h30m'"
        )
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


def _bounded(value: object, seconds: float) -> float:
    if seconds <= 0:
        raise DurationError(f"duration {value!r} must be positive")
    if seconds > MAX_DURATION_S:
        raise DurationError(f"duration {value!r} exceeds the limit of 366 days")
    return seconds
