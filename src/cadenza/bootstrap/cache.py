"""The shared cache (``Settings.cache_url``, else ``redis_url``) and its invalidation over the
bus: what ``runtime.build`` hands to the definition catalog and the agent registry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cadenza.application.agent_snapshots import AgentSnapshots
from cadenza.application.agents import AgentRegistry
from cadenza.application.definition_cache import DefinitionCache
from cadenza.application.invalidation import Announcer, Targets, follow
from cadenza.application.ports import Clock
from cadenza.application.ports_bus import BusMessage, EventBus
from cadenza.application.ports_cache import SharedCache
from cadenza.application.quotas import Quotas
from cadenza.bootstrap.bus import open_bus
from cadenza.infrastructure.cache.memory import NoCache
from cadenza.settings import Settings

LOCAL_REFRESH_S = 1.0  # memory bus: changes made by other processes are not announced
REMOTE_REFRESH_S = 60.0  # Redis/Kafka bus: changes are announced, the refresh is a backstop
CLOSE_TIMEOUT_S = 5.0  # closing waits this long for the invalidation follower to stop


def open_cache(settings: Settings) -> SharedCache:
    url = settings.cache_url or settings.redis_url
    if not url:
        return NoCache()
    from cadenza.infrastructure.cache.redis_cache import RedisCache

    return RedisCache(url, settings.cache_max_value_bytes)


@dataclass
class Caching:
    cache: SharedCache
    bus: EventBus | None  # the bus announcements go to and come from (None: memory bus)
    announcer: Announcer
    definitions: DefinitionCache
    snapshots: AgentSnapshots | None
    refresh_s: float
    owns_bus: bool = False
    group: str = field(default_factory=lambda: f"cache-{uuid.uuid4().hex}")
    _task: asyncio.Task[None] | None = None

    def start(
        self,
        agents: AgentRegistry,
        seen: Callable[[BusMessage], None] | None = None,
        quotas: Quotas | None = None,
        config: Callable[[str, str, str], None] | None = None,
        redaction: Callable[[], None] = lambda: None,
    ) -> None:
        """Follow the bus (one group per process) and drop what each message names;
        ``seen`` hears every message after that (tests); ``config`` reloads the stored
        runtime configuration (on its messages, and in full on (re)joining the bus);
        ``redaction`` drops the PII rules."""
        if self.bus is None or self._task is not None:
            return

        def everything() -> None:
            agents.invalidate()
            self.definitions.forget_all()
            if quotas is not None:
                quotas.forget_all()
            if config is not None:
                config("*", "", "")
            redaction()

        forget = quotas.forget if quotas is not None else (lambda workspace_id: None)
        targets = Targets(
            agents.invalidate,
            self.definitions.forget,
            everything,
            quotas=forget,
            config=config,
            redaction=redaction,
        )
        self._task = asyncio.create_task(
            follow(self.bus, self.group, targets, seen), name="cache-invalidation"
        )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: a subscription stuck leaving its group must not hold up shutdown
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
        await self.cache.aclose()
        if self.owns_bus and self.bus is not None:
            await self.bus.aclose()


def refresh_interval(settings: Settings, remote: bool) -> float:
    """How often a process re-reads what it caches: ``cache_refresh_s``, else a backstop for
    the announcements of a bus that crosses processes, or the only way to hear of changes."""
    return settings.cache_refresh_s or (REMOTE_REFRESH_S if remote else LOCAL_REFRESH_S)


def open_caching(settings: Settings, clock: Clock, bus: EventBus | None = None) -> Caching:
    """The cache and invalidation for ``settings``; ``bus``: the process's bus (else one is
    opened for invalidation alone when ``bus_url`` is not the memory bus)."""
    owns = False
    if bus is None and not settings.bus_url.startswith("memory:"):
        bus, owns = open_bus(settings), True
    remote = bus if bus is not None and not bus.local else None
    refresh_s = refresh_interval(settings, remote is not None)
    cache = open_cache(settings)
    announcer = Announcer(remote, clock)
    snapshots = AgentSnapshots(cache, refresh_s) if cache.shared else None
    definitions = DefinitionCache(cache, clock, refresh_s, announcer)
    return Caching(cache, remote, announcer, definitions, snapshots, refresh_s, owns)
