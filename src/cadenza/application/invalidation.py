"""Cross-process cache invalidation over the event bus.

A process that changes what other processes cache (registers, updates, deregisters an agent
or changes its status; publishes, or changes the status of, a definition version) announces
it with a small ``BusMessage`` after the change is stored (also a workspace's quota limits,
cached per process by ``application.quotas``). Every process follows the bus with
a consumer group of its own and drops the entries the message names, so a change made on one
API process is seen by every worker as soon as the message arrives rather than after the
refresh interval. Invalidation messages are not instance events: ``instance_id`` is ""
and ``seq`` 0, so consumers that deduplicate on ``(instance_id, seq)`` must not see them
(they ignore types they do not handle) and this follower never deduplicates: dropping an
entry twice is harmless.

Runtime configuration (``CONFIG_CHANGED``: a provider, MCP server or live setting was saved or
deleted; ``workspace_id`` is its scope, "*" when shared, ``data`` names its kind and name;
kind "*" when the workspace-deletion job removed all of a workspace's rows) makes every
process reload its stored configuration (``config_apply.ConfigApplier``).

A message can be lost (bus down, process restarting): the in-process caches still refresh
every ``agents_refresh_s`` and the follower drops everything when it (re)joins the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cadenza.application.ports import Clock
from cadenza.application.ports_bus import BusMessage, BusUnavailable, EventBus
from cadenza.domain.json import JSONObject

AGENTS_CHANGED = "AgentsChanged"
DEFINITION_PUBLISHED = "DefinitionPublished"
QUOTAS_CHANGED = "QuotasChanged"  # a workspace's own limits were set (``workspace_id``)
CONFIG_CHANGED = "ConfigChanged"
REDACTION_CHANGED = "RedactionChanged"  # a workspace's PII redaction rules changed
REJOIN_S = 1.0  # the follower waits this long before re-subscribing after a bus error

log = logging.getLogger(__name__)


class Announcer:
    """Publishes invalidation messages; never raises (the change is stored already)."""

    def __init__(self, bus: EventBus | None, clock: Clock) -> None:
        # the in-process bus reaches nobody else: the local caches were dropped already
        self._bus = None if bus is None or bus.local else bus
        self._clock = clock
        self._failing = False

    async def agents_changed(self) -> None:
        await self._publish(BusMessage(AGENTS_CHANGED, "", "", 0, self._clock.now()))

    async def definitions_changed(self, workspace_id: str, process_id: str) -> None:
        data: JSONObject = {"process_id": process_id}
        await self._publish(
            BusMessage(DEFINITION_PUBLISHED, "", workspace_id, 0, self._clock.now(), data)
        )

    async def quotas_changed(self, workspace_id: str) -> None:
        await self._publish(BusMessage(QUOTAS_CHANGED, "", workspace_id, 0, self._clock.now()))

    async def config_changed(self, workspace_id: str, kind: str, name: str) -> None:
        data: JSONObject = {"kind": kind, "name": name}
        await self._publish(
            BusMessage(CONFIG_CHANGED, "", workspace_id, 0, self._clock.now(), data)
        )

    async def redaction_changed(self, workspace_id: str) -> None:
        await self._publish(BusMessage(REDACTION_CHANGED, "", workspace_id, 0, self._clock.now()))

    async def _publish(self, message: BusMessage) -> None:
        if self._bus is None:
            return
        try:
            await self._bus.publish([message])
        except BusUnavailable as exc:
            if not self._failing:
                log.warning("cache invalidation not announced (bus unavailable): %s", exc)
            self._failing = True
            return
        self._failing = False


@dataclass(frozen=True)
class Targets:
    """What a message drops: all agent snapshots; one process's definition pointers; one
    workspace's cached quota limits; what reloads the stored runtime configuration; the
    redaction rules (all workspaces': they are loaded together)."""

    agents: Callable[[], None]
    definitions: Callable[[str, str], None]  # (workspace_id, process_id)
    everything: Callable[[], None]  # on (re)joining: messages may have been missed
    quotas: Callable[[str], None] = lambda workspace_id: None
    config: Callable[[str, str, str], None] | None = None  # (scope, kind, name): reload
    redaction: Callable[[], None] = lambda: None


def apply(message: BusMessage, targets: Targets) -> None:
    if message.type == AGENTS_CHANGED:
        targets.agents()
    elif message.type == DEFINITION_PUBLISHED:
        process_id = message.data.get("process_id")
        if isinstance(process_id, str):
            targets.definitions(message.workspace_id, process_id)
    elif message.type == QUOTAS_CHANGED:
        targets.quotas(message.workspace_id)
    elif message.type == CONFIG_CHANGED and targets.config is not None:
        kind, name = message.data.get("kind"), message.data.get("name")
        targets.config(message.workspace_id, str(kind or ""), str(name or ""))
    elif message.type == REDACTION_CHANGED:
        targets.redaction()


async def follow(
    bus: EventBus,
    group: str,
    targets: Targets,
    seen: Callable[[BusMessage], None] | None = None,
) -> None:
    """Apply every message of ``bus`` (group ``group``: one per process) until cancelled or
    the bus closes; ``seen`` hears each message after it was applied (tests, metrics)."""
    while True:
        targets.everything()
        try:
            async for message in bus.subscribe(group):
                apply(message, targets)
                if seen is not None:
                    seen(message)
            return  # the bus closed
        except BusUnavailable as exc:
            log.warning("cache invalidation: bus unavailable, rejoining: %s", exc)
        await asyncio.sleep(REJOIN_S)
