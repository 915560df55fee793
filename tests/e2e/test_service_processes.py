"""``cadenza worker`` and ``cadenza agents`` as an operator runs them: real processes, their
ops ports, and the agents service's failover after a SIGKILL of the active checker.

Waits are conditions with deadlines (a readiness answer, a row), never sleeps that must be
long enough; the deadlines are generous for a loaded machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from tests.pg import BACKENDS, backend_url

from cadenza.application.agent_service import AGENT_HEALTH_LEASE
from cadenza.application.leadership import RENEWALS_PER_LEASE
from cadenza.application.ports_leases import LeaseView
from cadenza.infrastructure.sql.database import create_engine
from cadenza.infrastructure.sql.tables import leaders

START_TIMEOUT_S = 120.0  # an upper bound: ~40 s to import and start on a machine at load 8
TOKEN = "metrics-token-" + "m" * 32
LEASE_S = 3.0
# the standby acts at the moment the lease it saw ends; this covers its own scheduling delay
# (event loop, a database round trip) on a busy machine: one retry tick
SCHEDULING_ALLOWANCE_S = LEASE_S / RENEWALS_PER_LEASE
_PORT = re.compile(r"ops port http://127\.0\.0\.1:(\d+) ")
_HOLDER = re.compile(r"^(?:worker|agents) (\S+) running on ", re.MULTILINE)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    holder: str
    base: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _env(tmp: Path, url: str) -> dict[str, str]:
    # PYTHONPATH passes through: the services run the code under test
    inherited = {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}
    return {
        **inherited,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "CADENZA_DATABASE_URL": url,
        "CADENZA_METRICS_TOKEN": TOKEN,
        "CADENZA_LEADER_LEASE_S": str(LEASE_S),
        "CADENZA_AGENT_HEALTH_INTERVAL_S": "0.5",
        "CADENZA_SHUTDOWN_GRACE_S": "0",
    }


async def _wait_for(what: str, probe: Callable[[], Any], proc: Service | None = None) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy, or fail."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        found = probe()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited:\n{proc.output()}")
        assert time.monotonic() < deadline, f"{what}: not within {START_TIMEOUT_S:g} s"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def services(tmp: Path, url: str) -> AsyncIterator[Callable[[str], Any]]:
    started: list[Service] = []

    async def spawn(role: str) -> Service:
        log = tmp / f"{role}-{len(started)}.log"
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "cadenza", role, "--port", "0"],
                env=_env(tmp, url),
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        service = Service(proc, log, 0, "", "")
        started.append(service)
        text = await _wait_for(
            f"{role} announced",
            lambda: _HOLDER.search(service.output()) and service.output(),
            service,
        )
        port_match, holder_match = _PORT.search(text), _HOLDER.search(text)
        assert port_match is not None, text
        assert holder_match is not None, text
        service.port, service.holder = int(port_match[1]), holder_match[1]
        service.base = f"http://127.0.0.1:{service.port}"
        return service

    try:
        yield spawn
    finally:
        for s in started:
            if s.proc.poll() is None:
                s.proc.kill()
            s.proc.wait(30)


async def _get(session: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any]:
    async with session.get(url, headers=headers) as r:
        body: Any = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


async def _lease(url: str) -> LeaseView | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = sa.select(leaders).where(leaders.c.name == AGENT_HEALTH_LEASE)
            row = (await conn.execute(stmt)).first()
    finally:
        await engine.dispose()
    return None if row is None else LeaseView(row.name, row.holder, row.expires_at, row.acquired_at)


async def test_worker_serves_health_readiness_and_metrics_on_its_port(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    async with services(tmp_path, url) as spawn, aiohttp.ClientSession() as http:
        worker = await spawn("worker")
        assert await _get(http, f"{worker.base}/health") == (200, {"status": "ok"})
        ready = {
            "status": "ok",
            "role": "worker",
            "checks": {"database": "ok", "engine": "ok", "bus": "ok"},
        }
        assert await _get(http, f"{worker.base}/health/readiness") == (200, ready)
        status, text = await _get(http, f"{worker.base}/metrics", Authorization=f"Bearer {TOKEN}")
        assert (status, "cadenza_engine_paused 0.0" in text) == (200, True)
        assert (await _get(http, f"{worker.base}/metrics"))[0] == 401
        assert (await _get(http, f"{worker.base}/api/v1/processes"))[0] == 404
        worker.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.proc.wait, 60) == 0


async def test_agents_standby_takes_over_within_one_lease_after_the_active_one_is_killed(
    tmp_path: Path, url: str
) -> None:
    async with services(tmp_path, url) as spawn, aiohttp.ClientSession() as http:

        async def readiness(s: Service) -> dict[str, Any]:
            status, body = await _get(http, f"{s.base}/health/readiness")
            assert status == 200, body
            assert isinstance(body, dict)
            return body

        first = await spawn("agents")
        await _wait_for("first leads", lambda: _leads(readiness, first), first)
        second = await spawn("agents")
        body = await readiness(second)
        assert (body["role"], body["leader"], body["health_checked_at"]) == ("agents", False, None)
        _, text = await _get(http, f"{second.base}/metrics", Authorization=f"Bearer {TOKEN}")
        assert "cadenza_agent_health_leader 0.0" in text

        first.proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        await asyncio.to_thread(first.proc.wait, 60)
        dead = await _lease(url)
        assert dead is not None
        assert dead.holder == first.holder
        assert dead.expires_at <= killed_at + LEASE_S  # renewed before the kill, never after

        body = await _wait_for("second leads", lambda: _leads(readiness, second), second)
        taken = await _lease(url)
        assert taken is not None
        assert taken.holder == second.holder
        assert taken.acquired_at >= dead.expires_at  # never two checkers at once
        assert taken.acquired_at <= killed_at + LEASE_S + SCHEDULING_ALLOWANCE_S
        assert body["health_checked_at"] >= taken.acquired_at  # its checks ran after taking over
        auth = {"Authorization": f"Bearer {TOKEN}"}
        _, text = await _get(http, f"{second.base}/metrics", **auth)
        assert "cadenza_agent_health_leader 1.0" in text


async def _leads(readiness: Callable[[Service], Any], s: Service) -> dict[str, Any] | None:
    body = await readiness(s)
    assert isinstance(body, dict)
    return body if body["leader"] and body["health_checked_at"] is not None else None
