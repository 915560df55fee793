"""Security regression test (issue 9, Low): ids carry 80 random bits each, so one id (or
many) does not let anyone derive another; they stay time-ordered and fit the id columns."""

from __future__ import annotations

import itertools
import re
import time

import pytest
import sqlalchemy as sa

from cadenza.infrastructure.ids import ID_LENGTH, RANDOM_BYTES, IdSource
from cadenza.infrastructure.sql.tables import instances, tasks

ID = re.compile(r"^[0-9a-f]{34}$")


def test_ids_are_34_hex_characters_and_fit_the_id_columns() -> None:
    new_id = IdSource()
    assert ID_LENGTH == 34
    assert ID.match(new_id())
    for column in (instances.c.id, tasks.c.id, tasks.c.lease_token):
        assert isinstance(column.type, sa.String)
        assert (column.type.length or 0) >= ID_LENGTH


def test_neighbouring_ids_share_no_random_part() -> None:
    """The old ids were one process-wide prefix plus a counter: from one id of another
    workspace's process, the next ones followed. Now each id's last 80 bits are fresh."""
    sources = [IdSource(), IdSource()]
    ids = [source() for _ in range(2000) for source in sources]
    randoms = [int(i[14:], 16) for i in ids]
    assert len(set(randoms)) == len(ids)
    steps = {b - a for a, b in itertools.pairwise(randoms)}
    assert len(steps) == len(ids) - 1  # no constant stride a caller could extrapolate


def test_ids_of_one_source_increase_even_when_the_clock_stands_still(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new_id = IdSource()
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
    ids = [new_id() for _ in range(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 100
    first = int(ids[0][:14], 16)
    assert [int(i[:14], 16) - first for i in ids] == list(range(100))
    monkeypatch.setattr(time, "time_ns", lambda: 1_600_000_000_000_000_000)  # clock went back
    assert new_id() > ids[-1]


def test_a_forked_child_does_not_reuse_the_parents_random_bytes() -> None:
    import os

    source = IdSource()
    source()  # the parent has read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id's random part, then leave at once
        os.write(write, source()[14:].encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 2 * RANDOM_BYTES
    assert child != source()[14:]
