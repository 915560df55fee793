"""Faults of the servers Cadenza depends on, with real servers on loopback.

* PostgreSQL, then MariaDB, stopped while instances run on the worker, kept down, started
  again;
* a full disk under SQLite (a small tmpfs filled up), then space freed;
* Redis (rate limits) stopped and started again under the API.

Each waits on what it can observe (every call arrived at the peer, the engine's store state,
a number of failed retries), never on a sleep. The database scenarios check that the engine
paused with one log line and a not-ready readiness, refused outside work with a clear error,
did not spin, resumed by itself, and that every instance completed with its exact outputs,
each task recorded once and each side effect run once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api.harness import Server, serve
from tests.e2e.faults_harness import (
    PROCESS_ID,
    Completions,
    RestartablePostgres,
    StoreWatch,
    assert_recorded_once,
    definition,
    fill,
    gated_peer,
    outage_outlasting,
    tmpfs,
)
from tests.mariadb import MariadbServer, MariadbUnavailable
from tests.mariadb import create_database as create_mariadb_database
from tests.pg import PostgresUnavailable, create_database
from tests.redis_server import RedisServer, RedisUnavailable

from cadenza.application.ports import StoreUnavailable
from cadenza.domain.commands import StartInstance
from cadenza.infrastructure.ratelimit import RETRY_INITIAL_S, build_limiter
from cadenza.settings import Settings

INSTANCES = 20
LEASE_S = 2.0  # the outages outlast it: leases of tasks still running lapse meanwhile
FINISH_TIMEOUT_S = 60.0  # a safety net for a hung run, not a timing assumption
ENGINE_LOGGERS = (
    "cadenza.application.availability",
    "cadenza.application.engine.listeners",
    "cadenza.application.engine.loop",
    "cadenza.application.engine.sweeper",
    "cadenza.application.worker",
)


def _skip_or_fail(exc: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{exc} (a skipped integration test in CI is a failure)")
    pytest.skip(str(exc))


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def database(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[RestartablePostgres | MariadbServer, str]]:
    """A database server of this test alone (it is stopped and started mid-run) and the URL
    of a fresh database on it."""
    server: RestartablePostgres | MariadbServer
    try:
        if request.param == "postgres":
            pg = RestartablePostgres.start()
            assert isinstance(pg, RestartablePostgres)
            server, url = pg, create_database(pg.url("postgres"))
        else:
            server = MariadbServer.start()
            url = create_mariadb_database(server.url(""))
    except (PostgresUnavailable, MariadbUnavailable) as exc:
        _skip_or_fail(exc)
        raise
    try:
        yield server, url
    finally:
        server.stop()


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A Redis server of this test alone: it is stopped and started mid-run."""
    try:
        server = RedisServer.start()
    except RedisUnavailable as exc:
        _skip_or_fail(exc)
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        _skip_or_fail(RuntimeError("mounting a tmpfs needs root"))
    with tmpfs(tmp_path / "disk", "16m") as directory:
        yield directory


async def _start_all(srv: Server) -> dict[str, int]:
    ids: dict[str, int] = {}
    for i in range(INSTANCES):
        r = await srv.admin.post(
            "/api/v1/processes/instances", {"process_id": PROCESS_ID, "inputs": {"i": i}}
        )
        assert r.status == 201, r.body
        ids[r.body["id"]] = i
    return ids


async def _assert_paused(srv: Server, database_check: str) -> None:
    """Outside work is refused at once with a clear error; readiness says why."""
    with pytest.raises(StoreUnavailable, match="the store is unavailable"):
        await srv.runtime.engine.submit(StartInstance(PROCESS_ID, {"i": 99}))
    r = await srv.admin.post(
        "/api/v1/processes/instances", {"process_id": PROCESS_ID, "inputs": {"i": 98}}
    )
    assert r.status == 503, r.body
    assert r.headers["Retry-After"] == "5"
    assert r.body["detail"].startswith("the database is unavailable; try again shortly")
    ready = await srv.anonymous.get("/health/readiness")
    assert ready.status == 503
    assert ready.body["checks"]["engine"] == "paused: store unavailable"
    assert ready.body["checks"]["database"].startswith(database_check)


async def _assert_resumed(srv: Server, watch: StoreWatch) -> None:
    ready = await srv.anonymous.get("/health/readiness")
    assert ready.status == 200, ready.body
    metrics = (await srv.admin.get("/metrics")).body
    assert "cadenza_engine_paused 0.0" in metrics
    assert f"cadenza_store_errors_total {float(watch.errors)}" in metrics
    # and it takes work again
    r = await srv.admin.post(
        "/api/v1/processes/instances", {"process_id": PROCESS_ID, "inputs": {"i": 100}}
    )
    assert r.status == 201, r.body
    done = await asyncio.wait_for(srv.runtime.engine.wait_finished(r.body["id"]), 10)
    assert done.outputs == {"i": 100, "x": 1000}


def _assert_logged_once(caplog: pytest.LogCaptureFixture, reason: str = "") -> None:
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    # the API's readers of the store say it once per outage too, if they met it at all
    feed = [m.split(":")[0] for name, _, m in lines if name == "cadenza.application.feed"]
    assert feed in ([], ["event feed paused", "event feed resumed"]), feed
    series = [m.split(" (")[0] for name, _, m in lines if name.endswith("observability.series")]
    assert series in ([], ["queue depth unavailable"]), series
    engine = [line for line in lines if line[0] in ENGINE_LOGGERS]
    assert [(name, level) for name, level, _ in engine] == [
        ("cadenza.application.availability", "ERROR"),
        ("cadenza.application.availability", "WARNING"),
    ], engine
    assert engine[0][2].startswith("store unavailable (")
    assert reason in engine[0][2]
    assert engine[1][2].startswith("store available again after ")


def _assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged during the outage carries a traceback: outages are said, not dumped."""
    dumped = [(r.name, r.getMessage()) for r in caplog.records if r.exc_info or r.exc_text]
    assert dumped == [], dumped


async def test_database_restart_mid_run_pauses_the_engine_and_loses_nothing(
    database: tuple[RestartablePostgres | MariadbServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = database
    async with (
        gated_peer(INSTANCES) as peer,
        serve(
            url,
            egress_allowed_hosts=["127.0.0.1"],
            lease_s=LEASE_S,
            # agent health rounds every 0.2 s, under a lease that outlasts the outage: they
            # keep running while the database is away
            agent_health_interval_s=0.2,
            leader_lease_s=120,
        ) as srv,
    ):
        engine = srv.runtime.engine
        watch = StoreWatch(engine.availability)
        done = Completions(engine, INSTANCES)
        await srv.runtime.definitions.publish(definition(peer.url))
        ids = await _start_all(srv)
        await peer.arrived.wait()  # every instance runs its http task on the worker
        with caplog.at_level(logging.INFO, logger="cadenza"):
            await asyncio.to_thread(server.halt)
            peer.early.set()  # half the results come back while the database is down
            await watch.down.wait()
            await _assert_paused(srv, "unreachable")
            await watch.until_errors(outage_outlasting(LEASE_S))
            assert not done.ids  # nothing committed while the database is down
            await asyncio.to_thread(server.resume)
            await watch.up.wait()
            peer.late.set()  # the other half still ran: their lapsed leases were renewed
            await asyncio.wait_for(done.all_done.wait(), FINISH_TIMEOUT_S)
        # the first failure names a refused connection or a server shutting down
        _assert_logged_once(caplog)
        _assert_no_traceback(caplog)
        health = [
            (r.levelname, r.getMessage().split(":")[0])
            for r in caplog.records
            if r.name == "cadenza.application.health"
        ]
        assert health == [
            ("WARNING", "agent health check round paused"),
            ("INFO", "agent health check round resumed"),
        ], health
        assert watch.errors <= watch.max_failures()
        assert done.ids == set(ids)
        assert len(peer.keys) == len(set(peer.keys)) == INSTANCES  # each call ran once
        await assert_recorded_once(engine.store, ids)
        await _assert_resumed(srv, watch)


def _truncate_wal(db: Path) -> None:
    """Checkpoint the WAL into the database and empty it, so the next commit must grow it."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    assert busy == 0
    assert db.with_name(db.name + "-wal").stat().st_size == 0


async def test_full_disk_under_sqlite_pauses_the_engine_until_space_is_freed(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = small_disk / "cadenza.db"
    async with (
        gated_peer(INSTANCES) as peer,
        serve(f"sqlite:///{db}", egress_allowed_hosts=["127.0.0.1"], lease_s=LEASE_S) as srv,
    ):
        engine = srv.runtime.engine
        watch = StoreWatch(engine.availability)
        done = Completions(engine, INSTANCES)
        await srv.runtime.definitions.publish(definition(peer.url))
        ids = await _start_all(srv)
        await peer.arrived.wait()
        with caplog.at_level(logging.INFO, logger="cadenza"):
            await asyncio.to_thread(_truncate_wal, db)
            filler = small_disk / "filler"
            assert await asyncio.to_thread(fill, filler) > 0
            peer.early.set()  # half the results come back to a full disk
            await watch.down.wait()
            assert engine.availability.reason == "OperationalError: database or disk is full"
            await _assert_paused(srv, "ok")  # reads still work: the database answers
            await watch.until_errors(outage_outlasting(LEASE_S))
            assert not done.ids  # nothing committed while the disk is full
            filler.unlink()  # space freed
            await watch.up.wait()
            peer.late.set()  # the other half still ran: their lapsed leases were renewed
            await asyncio.wait_for(done.all_done.wait(), FINISH_TIMEOUT_S)
        _assert_logged_once(caplog, "database or disk is full")
        _assert_no_traceback(caplog)
        assert watch.errors <= watch.max_failures()
        assert done.ids == set(ids)
        assert len(peer.keys) == len(set(peer.keys)) == INSTANCES
        await assert_recorded_once(engine.store, ids)
        await _assert_resumed(srv, watch)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_redis_restart_under_the_api_fails_open_then_limits_again(
    tmp_path: Path, redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis.url()
    async with serve(f"sqlite:///{tmp_path}/api.db", rate_limit="5/minute", redis_url=url) as srv:
        services = srv.app.state.services
        clock = FakeClock()  # the fail-open window is timed on it, so the test says when it ends
        limiter = build_limiter(Settings(rate_limit="5/minute", redis_url=url), monotonic=clock)
        services.limiter = limiter
        try:

            async def statuses(n: int) -> list[int]:
                return [(await srv.admin.get("/api/v1/me")).status for _ in range(n)]

            available: list[bool] = []  # the limiter's state after each phase

            assert await statuses(6) == [200] * 5 + [429]  # limited, counted in Redis
            with caplog.at_level(logging.INFO, logger="cadenza.infrastructure.ratelimit"):
                await asyncio.to_thread(redis.halt)
                assert await statuses(10) == [200] * 10  # fail open: served, none refused
                available.append(limiter.available)
                await asyncio.to_thread(redis.resume)  # restarted empty
                assert await statuses(3) == [200] * 3  # still in the window: not asked
                available.append(limiter.available)
                clock.now += RETRY_INITIAL_S  # the window ends: the next request asks Redis
                assert await statuses(6) == [200] * 5 + [429]
                available.append(limiter.available)
            assert available == [False, False, True]
            # this logger's lines only: start-up lines are captured too when an earlier test
            # left the root logger at INFO
            lines = [
                (r.levelname, r.getMessage())
                for r in caplog.records
                if r.name == "cadenza.infrastructure.ratelimit"
            ]
            assert [level for level, _ in lines] == ["WARNING", "WARNING"], lines
            assert lines[0][1].startswith("rate-limit storage unreachable (")
            assert lines[1][1].startswith("rate-limit storage reachable again after ")
        finally:
            await limiter.close()
