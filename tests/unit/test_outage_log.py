"""A periodic duty says a database outage once: one WARNING when it begins (no traceback),
DEBUG while it lasts, one INFO when it ends; a bug is logged with its traceback every round.
Rounds are driven by the test, without sleeps."""

from __future__ import annotations

import itertools
import logging

import pytest

from cadenza.application import outage_log
from cadenza.application.agents import AgentRegistry
from cadenza.application.health import HealthChecker
from cadenza.application.outage_log import OutageLog
from cadenza.application.ports import StoreUnavailable
from cadenza.domain.agent import Agent
from cadenza.infrastructure.agents_memory import MemoryAgentRepository
from cadenza.infrastructure.sql.faults import unavailable

HEALTH_LOGGER = "cadenza.application.health"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class FlakyRepository(MemoryAgentRepository):
    """Agents in memory; ``list`` fails the way a store that is away does while ``failures``
    lasts, or raises ``bug`` when set."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.bug: Exception | None = None

    async def list(self) -> list[Agent]:
        if self.bug is not None:
            raise self.bug
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("ConnectionRefusedError: [Errno 111] Connect call failed")
        return await super().list()


def _checker() -> tuple[HealthChecker, FlakyRepository, FakeClock]:
    repo, clock, counter = FlakyRepository(), FakeClock(), itertools.count(1)
    registry = AgentRegistry(repo, clock, lambda: f"id{next(counter)}")
    return HealthChecker(registry, {}, clock, interval_s=30), repo, clock


def _ours(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


async def test_a_store_outage_is_logged_once_when_it_begins_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checker, repo, clock = _checker()
    repo.failures = 5
    with caplog.at_level(logging.DEBUG, logger=HEALTH_LOGGER):
        for _ in range(5):
            await checker.round()
        assert checker.last_round_at is None  # no round finished during the outage
        clock.t += 150
        await checker.round()
        await checker.round()  # and nothing more once it is over
    records = _ours(caplog, HEALTH_LOGGER)
    said = [(r.levelname, r.getMessage()) for r in records if r.levelno > logging.DEBUG]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert said[0][1] == (
        "agent health check round paused: the store is unavailable "
        "(ConnectionRefusedError: [Errno 111] Connect call failed); trying again each round"
    )
    assert said[1][1].startswith("agent health check round resumed: the store is back after ")
    assert said[1][1].endswith("(5 failed rounds)")
    assert [r.levelname for r in records].count("DEBUG") == 4
    assert all(r.exc_info is None for r in records)  # no traceback
    assert checker.last_round_at == clock.t


async def test_a_bug_is_logged_with_its_traceback_every_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checker, repo, _ = _checker()
    repo.bug = KeyError("agent_id")
    with caplog.at_level(logging.DEBUG, logger=HEALTH_LOGGER):
        await checker.round()
        await checker.round()
    records = _ours(caplog, HEALTH_LOGGER)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("ERROR", "agent health check round failed"),
        ("ERROR", "agent health check round failed"),
    ]
    assert all(r.exc_info is not None and r.exc_info[1] is repo.bug for r in records)


async def test_a_drivers_connection_error_counts_as_an_outage_once_recognised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQL repositories beside the store raise their driver's errors; the composition
    root tells the helper which of those are outages (``faults.unavailable``)."""
    monkeypatch.setattr(outage_log, "_recognise", unavailable)
    log = logging.getLogger("tests.outage")
    outage = OutageLog(log, "retention run")
    with caplog.at_level(logging.DEBUG, logger="tests.outage"):
        for _ in range(3):
            with outage.round():
                raise ConnectionRefusedError(111, "Connect call failed")
        with outage.round():
            pass
        with outage.round():
            raise ValueError("a bug, not an outage")
    records = _ours(caplog, "tests.outage")
    assert [r.levelname for r in records] == ["WARNING", "DEBUG", "DEBUG", "INFO", "ERROR"]
    assert [r.exc_info is not None for r in records] == [False, False, False, False, True]
    assert not outage.down
