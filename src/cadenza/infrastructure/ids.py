"""Ids for everything the system creates: unguessable, time-ordered, 34 hex characters.

An id is 56 bits of time since the epoch in units of 1.024 µs (14 hex digits, good until
the year 4300),
then 80 bits from the operating system's CSPRNG (20 hex digits). Knowing any number of ids
tells nothing about the random part of another, so one workspace cannot derive the ids of
another's instances or tasks (the ids used to be a per-process prefix plus a counter).

The time prefix keeps new rows at the right edge of primary-key indexes (like UUIDv7) and
makes a process's ids strictly increasing: when the clock has not moved since the last id
(or went back), the previous timestamp plus one is used. Ids fit the 40-character columns.
"""

from __future__ import annotations

import os
import time
import weakref

RANDOM_BYTES = 10  # 80 bits: guessing one id of a known microsecond takes ~6e23 tries
ID_LENGTH = 14 + 2 * RANDOM_BYTES


_SOURCES: weakref.WeakSet[IdSource] = weakref.WeakSet()


def _forget_read_ahead() -> None:
    """In a forked child: every source reads fresh bytes (``os.getpid`` per id would cost a
    system call each)."""
    for source in list(_SOURCES):
        source._random, source._at = b"", 0


_hooked: list[bool] = []  # the fork hook is installed by the first source, not at import


class IdSource:
    """``IdGenerator``: call it for a new id."""

    def __init__(self) -> None:
        self._last = 0
        self._random = b""  # CSPRNG bytes read ahead: one system call per 256 ids
        self._at = 0
        _SOURCES.add(self)  # a forked child must not reuse its parent's read-ahead
        if not _hooked:
            os.register_at_fork(after_in_child=_forget_read_ahead)
            _hooked.append(True)

    def __call__(self) -> str:
        now = time.time_ns() >> 10  # ~microseconds; a shift is cheaper than a division
        if now <= self._last:
            now = self._last + 1
        self._last = now
        if self._at >= len(self._random):
            self._random, self._at = os.urandom(RANDOM_BYTES * 256), 0
        part = self._random[self._at : self._at + RANDOM_BYTES]
        self._at += RANDOM_BYTES
        return f"{now:014x}{part.hex()}"
