"""The agent-management service's duties (``cadenza agents``, and ``cadenza serve``): registry
health checks every ``agent_health_interval_s`` and external-worker assignment bookkeeping.

They run in one process at a time: the holder of leader lease ``agent-health``
(``application.leadership``); other instances of the service stand by and take over within
one lease period when the holder dies.
"""

from __future__ import annotations

import asyncio
import logging

from cadenza.application.external import ExternalWorkers
from cadenza.application.health import HealthChecker
from cadenza.application.outage_log import OutageLog
from cadenza.application.ports import Clock

log = logging.getLogger(__name__)

AGENT_HEALTH_LEASE = "agent-health"


class AgentDuties:
    def __init__(
        self, health: HealthChecker, external: ExternalWorkers, clock: Clock, interval_s: float
    ) -> None:
        self.health = health
        self._external = external
        self._clock = clock
        self._interval_s = interval_s

    async def run(self) -> None:
        """The duty the lease guards: both loops until cancelled (lease lost, or shutdown)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.health.run(), name="agent-health-checks")
            tg.create_task(self._bookkeeping_loop(), name="agent-bookkeeping")

    async def bookkeeping(self) -> None:
        """Periodic external-worker assignment bookkeeping, the one place the service does
        it: assignments overdue past their deadline (their dispatcher died) are abandoned and
        finished ones past retention deleted (``ExternalWorkers.expire``)."""
        await self._external.expire(self._clock.now())

    async def _bookkeeping_loop(self) -> None:
        outage = OutageLog(log, "assignment bookkeeping")
        while True:
            with outage.round():  # a failing store must not end the health checks beside it
                await self.bookkeeping()
            await asyncio.sleep(self._interval_s)
