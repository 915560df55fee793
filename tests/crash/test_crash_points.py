"""SIGKILL at every named crash point, on SQLite, PostgreSQL and MariaDB, then restart: nothing
is lost, nothing is recorded twice, every instance ends with the outputs of a fault-free run.

The full run (``-m crash``, part of ``make test``) lands ``CRASH_KILLS`` kills per point and
backend: 6 points x 3 backends x 84 = 1,512 SIGKILLs. ``test_every_crash_point_once_on_sqlite``
is the quick part: a few kills per point. Each run's counts go to
``bench/results/crash-points.json``; ``python -m bench.crash`` prints them as a table.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.crash.forkserver import ForkServer
from tests.crash.harness import CrashRun, record, without_known_tracebacks
from tests.crash.workload import SideEffects, mcp_server, side_effect_server
from tests.pg import BACKENDS, backend_url

from cadenza.application.failpoints import POINTS

# the relay's point needs a bus between processes (tests/integration/test_outbox_relay.py);
# the workspace-deletion job's has its own (tests/integration/test_workspace_deletion_crash.py);
# the blob point only passes when a payload is offloaded (tests/integration/test_payload_crash.py)
SEPARATE = {"mid-outbox-relay", "mid-workspace-deletion", "after-blob-write-before-commit"}
ENGINE_POINTS = sorted(POINTS - SEPARATE)
SEED = 20261201
JOBS = 6
CRASH_KILLS = int(os.environ.get("CADENZA_CRASH_KILLS", "84"))
QUICK_KILLS = 4


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with mcp_server() as url:
        yield url


@pytest.fixture
async def side() -> AsyncIterator[SideEffects]:
    async with side_effect_server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


async def _crash_run(
    fork: ForkServer, side: SideEffects, mcp_url: str, url: str, tmp_path: Path
) -> CrashRun:
    run = CrashRun(fork, side, mcp_url, url, tmp_path / "children.log", SEED)
    await run.reference(f"sqlite:///{tmp_path}/reference.db", random.Random(SEED), JOBS)
    return run


@pytest.mark.crash
@pytest.mark.parametrize("point", ENGINE_POINTS)
async def test_kills_at_a_crash_point_lose_nothing_and_record_nothing_twice(
    point: str, fork: ForkServer, side: SideEffects, mcp_url: str, url: str, tmp_path: Path
) -> None:
    run = await _crash_run(fork, side, mcp_url, url, tmp_path)
    tally = await run.kill_at(point, CRASH_KILLS)
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    backend = "mariadb" if scheme == "mysql" else scheme  # or sqlite, postgresql
    record(backend, point, tally)
    print(f"\n{backend} {point}: {tally}")
    assert tally.kills == CRASH_KILLS
    assert (tally.lost, tally.duplicate_results, tally.charged_requeues) == (0, 0, 0)
    assert "Traceback" not in without_known_tracebacks(run.tail(10_000))[0]


async def test_every_crash_point_once_on_sqlite(
    fork: ForkServer, side: SideEffects, mcp_url: str, tmp_path: Path
) -> None:
    run = await _crash_run(fork, side, mcp_url, f"sqlite:///{tmp_path}/c.db", tmp_path)
    for point in ENGINE_POINTS:
        tally = await run.kill_at(point, QUICK_KILLS)
        assert tally.kills == QUICK_KILLS
        assert (tally.lost, tally.duplicate_results, tally.charged_requeues) == (0, 0, 0)
    assert "Traceback" not in without_known_tracebacks(run.tail(10_000))[0]
