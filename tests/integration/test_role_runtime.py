"""Each service role starts what it owns, and nothing else (``Runtime.start``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cadenza.application.readiness import ServiceRole
from cadenza.bootstrap import build
from cadenza.settings import Settings

# role: (commit loop runs, tasks run here, agent duties run here)
OWNS = {
    ServiceRole.ALL: (True, True, True),
    ServiceRole.API: (True, False, False),
    ServiceRole.WORKER: (True, True, False),
    ServiceRole.AGENTS: (False, False, True),
}


@pytest.mark.parametrize("role", list(ServiceRole))
async def test_each_role_starts_what_it_owns(role: ServiceRole, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", agent_health_interval_s=60)
    runtime = await build(settings, role=role)
    try:
        await runtime.start()
        runs_engine, runs_tasks, duties = OWNS[role]
        if duties:  # the lease is taken by the first step of the duties' task
            async with asyncio.timeout(30):
                while runtime.health.last_round_at is None:
                    await asyncio.sleep(0.01)
        ready = await runtime.readiness()
        assert (runtime.engine.running, runtime.engine.settings.run_worker) == (
            runs_engine,
            runs_tasks,
        )
        assert (runtime.leadership.leader, ready.leader) == (duties, True if duties else None)
        expected = (
            {"database": "ok", "engine": "ok", "bus": "ok"} if runs_engine else {"database": "ok"}
        )
        assert (ready.role, ready.ready, dict(ready.checks)) == (str(role), True, expected)
    finally:
        await runtime.close()
    assert not runtime.leadership.leader


async def test_a_process_without_agent_duties_never_takes_the_lease(tmp_path: Path) -> None:
    """A worker next to the agents service: the agents service gets the lease, the worker's
    runtime never runs health checks even while the lease is free."""
    url = f"sqlite:///{tmp_path}/c.db"
    worker = await build(Settings(database_url=url), role=ServiceRole.WORKER)
    agents = await build(Settings(database_url=url), role=ServiceRole.AGENTS)
    try:
        await worker.start()
        await agents.start()
        async with asyncio.timeout(30):
            while not agents.leadership.leader:
                await asyncio.sleep(0.01)
        assert agents.leadership.seen is not None
        assert agents.leadership.seen.holder == agents.leadership.holder
        assert (worker.leadership.leader, worker.leadership.seen) == (False, None)
    finally:
        await agents.close()
        await worker.close()
