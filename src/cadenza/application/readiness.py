"""What each service role runs, and the readiness every role reports: one logic for the API's
``/health/readiness`` and the ops port of ``cadenza worker`` / ``cadenza agents``.

A role is ready when the store answers a query within ``READINESS_TIMEOUT_S`` and, where it
runs the engine, the engine's commit loop runs and the store takes writes (not paused). The
report names the role and, for roles with agent duties, whether this process is the leader
(holds the ``agent-health`` lease); a standby is ready too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cadenza.application.engine import Engine
from cadenza.domain.json import JSON, JSONObject

READINESS_TIMEOUT_S = 5.0  # a store slower than this to answer SELECT 1 is "unreachable"
OK = "ok"


class ServiceRole(StrEnum):
    """One process's job; see docs/_parts/roles.md for what each owns."""

    ALL = "all"  # cadenza serve: everything in one process
    API = "api"  # cadenza serve --role api: REST, streams, GraphQL, /mcp, the console
    WORKER = "worker"  # cadenza worker: commit loop, executors, sweeper, timers
    AGENTS = "agents"  # cadenza agents: agent health checks (leased), assignment bookkeeping

    @property
    def runs_engine(self) -> bool:
        """The commit loop and the sweeper (the API commits the instances it starts)."""
        return self is not ServiceRole.AGENTS

    @property
    def runs_tasks(self) -> bool:
        """Claims and executes tasks (the engine's worker)."""
        return self in (ServiceRole.ALL, ServiceRole.WORKER)

    @property
    def has_agent_duties(self) -> bool:
        """Health checks and assignment bookkeeping, while holding the leader lease."""
        return self in (ServiceRole.ALL, ServiceRole.AGENTS)


@dataclass(frozen=True)
class Readiness:
    role: str
    checks: Mapping[str, str]  # each "ok", or why not
    leader: bool | None = None  # None: the role has no leased duty
    facts: Mapping[str, JSON] = field(default_factory=dict)  # shown, not judged

    @property
    def ready(self) -> bool:
        return all(v == OK for v in self.checks.values())

    def body(self) -> JSONObject:
        out: JSONObject = {"status": OK if self.ready else "unavailable", "role": self.role}
        if self.leader is not None:
            out["leader"] = self.leader
        out.update(self.facts)
        out["checks"] = dict(self.checks)
        return out


async def database_check(ping: Callable[[], Awaitable[None]]) -> str:
    """ "ok" when ``ping`` answers within ``READINESS_TIMEOUT_S``, else why not."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await ping()
    except TimeoutError:
        return f"unreachable: no answer in {READINESS_TIMEOUT_S:g}s"
    except Exception as exc:  # any failure means not ready; the reason is shown
        return f"unreachable: {type(exc).__name__}"
    return OK


def engine_check(engine: Engine) -> str:
    if not engine.running:
        return "stopped"
    return OK if engine.availability.available else "paused: store unavailable"
