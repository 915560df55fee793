"""The engine's "store unavailable" state, and which database errors put it there."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from cadenza.application.availability import StoreAvailability, StoreStatus
from cadenza.application.ports import StoreUnavailable
from cadenza.infrastructure.sql.faults import unavailable


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told: list[StoreStatus] = []
    clock = Clock()
    store = StoreAvailability(monotonic=clock)
    store.subscribe(told.append)
    with caplog.at_level(logging.DEBUG, logger="cadenza.application.availability"):
        for n in range(5):
            store.failed(StoreUnavailable(f"refused {n}"))
        clock.now += 3.5
        during = (store.available, store.reason)
        store.recovered()
        store.recovered()  # a commit after the outage: nothing more to say
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert [level for level, _ in lines] == ["ERROR", "WARNING"]
    assert lines[0][1].startswith("store unavailable (refused 0): the engine takes no new work")
    assert lines[1][1] == (
        "store available again after 3.5s (5 failed attempts): the engine resumes"
    )
    assert told == [StoreStatus(False, f"refused {n}") for n in range(5)] + [StoreStatus(True)]
    assert during == (False, "refused 4")
    assert (store.available, store.reason) == (True, None)


async def test_backoff_doubles_up_to_its_bound_and_starts_over_for_a_later_outage() -> None:
    sleeps, clock = Sleeps(), Clock()
    store = StoreAvailability(initial_s=0.05, max_s=0.5, monotonic=clock, sleep=sleeps)
    store.failed(StoreUnavailable("down"))
    for _ in range(6):
        await store.backoff()
    store.recovered()
    clock.now += 0.6  # a new outage, longer than max_s after the last one ended
    store.failed(StoreUnavailable("down again"))
    await store.backoff()
    assert sleeps.delays == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.05]


async def test_a_store_that_fails_again_right_after_recovering_keeps_its_backoff() -> None:
    sleeps, clock = Sleeps(), Clock()
    store = StoreAvailability(initial_s=0.05, max_s=0.5, monotonic=clock, sleep=sleeps)
    store.failed(StoreUnavailable("down"))
    for _ in range(3):
        await store.backoff()
    store.recovered()
    clock.now += 0.1  # flapping: no faster retries than before
    store.failed(StoreUnavailable("down again"))
    await store.backoff()
    assert sleeps.delays == [0.05, 0.1, 0.2, 0.4]


async def test_waiting_for_the_store_returns_once_it_is_back() -> None:
    store = StoreAvailability()
    await store.wait_available()  # available: returns at once
    store.failed(StoreUnavailable("down"))
    waiter = asyncio.ensure_future(store.wait_available())
    await asyncio.sleep(0)
    assert not waiter.done()
    store.recovered()
    await waiter


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    told: list[StoreStatus] = []

    def broken(_: StoreStatus) -> None:
        raise RuntimeError("observer bug")

    store = StoreAvailability()
    store.subscribe(broken)
    store.subscribe(told.append)
    with caplog.at_level(logging.ERROR, logger="cadenza.application.availability"):
        store.failed(StoreUnavailable("down"))
    assert told == [StoreStatus(False, "down")]
    assert "store status listener failed" in caplog.text


def _sqlite(message: str, name: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorname = name
    return exc


class PgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (
            OperationalError("COMMIT", {}, _sqlite("database or disk is full", "SQLITE_FULL")),
            "OperationalError: database or disk is full",
        ),
        (
            OperationalError("COMMIT", {}, _sqlite("disk I/O error", "SQLITE_IOERR_WRITE")),
            "OperationalError: disk I/O error",
        ),
        (
            OperationalError("SELECT 1", {}, PgError("terminating connection", "57P01")),
            "PgError: terminating connection",
        ),
        (
            OperationalError(
                "SELECT 1", {}, PgError("the database system is starting up", "57P03")
            ),
            "PgError: the database system is starting up",
        ),
        (
            OperationalError("SELECT 1", {}, PgError("could not write: no space", "53100")),
            "PgError: could not write: no space",
        ),
        (
            OperationalError(
                "SELECT 1", {}, PgError("closed", "XX000"), connection_invalidated=True
            ),
            "PgError: closed",
        ),
        (
            ConnectionRefusedError(111, "Connect call failed"),
            "ConnectionRefusedError: [Errno 111] Connect call failed",
        ),
    ],
)
def test_an_away_or_full_store_is_unavailable(exc: BaseException, reason: str) -> None:
    down = unavailable(exc)
    assert isinstance(down, StoreUnavailable)
    assert str(down) == reason


@pytest.mark.parametrize(
    "exc",
    [
        IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: events")),
        OperationalError("SELECT", {}, _sqlite("no such table: nothing", "SQLITE_ERROR")),
        ProgrammingError("SELECT", {}, PgError('relation "nothing" does not exist', "42P01")),
        ValueError("not a database error"),
    ],
)
def test_a_wrong_statement_is_not_an_outage(exc: BaseException) -> None:
    assert unavailable(exc) is None
