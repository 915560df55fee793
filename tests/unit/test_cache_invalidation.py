"""Invalidation messages and the definition cache, without I/O: what a message drops, that
announcing never fails a change, and what the definition cache keeps and refuses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from cadenza.application.definition_cache import DefinitionCache
from cadenza.application.invalidation import (
    AGENTS_CHANGED,
    CONFIG_CHANGED,
    DEFINITION_PUBLISHED,
    Announcer,
    Targets,
    apply,
    follow,
)
from cadenza.application.ports import StoredDefinition
from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.application.ports_cache import cache_key, set_json
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.bus.memory import MemoryBus
from cadenza.infrastructure.cache.memory import MemoryCache


class Clock:
    t = 100.0

    def now(self) -> float:
        return self.t


class DownBus:
    url = "redis://down"
    local = False

    def __init__(self) -> None:
        self.attempts = 0

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        self.attempts += 1
        raise BusUnavailable("connection refused")

    async def subscribe(self, group: str) -> AsyncIterator[BusMessage]:  # pragma: no cover
        return
        yield

    async def ping(self) -> None:  # pragma: no cover
        raise BusUnavailable("down")

    async def aclose(self) -> None:  # pragma: no cover
        return None


def stored(version: int, status: str = "published", workspace: str = "w1") -> StoredDefinition:
    return StoredDefinition("p", version, f"h{version}", status, {"id": "p"}, 1.0, workspace)


def test_each_message_drops_what_it_names() -> None:
    dropped: list[object] = []
    targets = Targets(
        lambda: dropped.append("agents"),
        lambda ws, pid: dropped.append((ws, pid)),
        lambda: dropped.append("everything"),
    )
    apply(BusMessage(AGENTS_CHANGED, "", "", 0, 1.0), targets)
    apply(BusMessage(DEFINITION_PUBLISHED, "", "w1", 0, 1.0, {"process_id": "p"}), targets)
    apply(BusMessage(DEFINITION_PUBLISHED, "", "w1", 0, 1.0, {"process_id": 7}), targets)
    apply(BusMessage("TaskCompleted", "i1", "w1", 3, 1.0), targets)
    assert dropped == ["agents", ("w1", "p")]


def test_a_config_message_reloads_the_runtime_configuration() -> None:
    seen: list[object] = []
    targets = Targets(
        lambda: seen.append("agents"),
        lambda ws, pid: seen.append((ws, pid)),
        lambda: seen.append("everything"),
        lambda ws, kind, name: seen.append(("config", ws, kind, name)),
    )
    data: JSONObject = {"kind": "provider", "name": "remote"}
    apply(BusMessage(CONFIG_CHANGED, "", "w1", 0, 1.0, data), targets)
    apply(BusMessage(CONFIG_CHANGED, "", "*", 0, 1.0, {"kind": "setting"}), targets)
    assert seen == [("config", "w1", "provider", "remote"), ("config", "*", "setting", "")]
    # a process without runtime configuration ignores the message
    without = Targets(targets.agents, targets.definitions, targets.everything)
    apply(BusMessage(CONFIG_CHANGED, "", "w1", 0, 1.0, data), without)
    assert len(seen) == 2


async def test_the_memory_bus_announces_nothing() -> None:
    bus = MemoryBus()
    announcer = Announcer(bus, Clock())
    received: list[BusMessage] = []

    async def listen() -> None:
        async for m in bus.subscribe("g"):
            received.append(m)

    await announcer.agents_changed()
    await bus.aclose()
    await listen()
    assert received == []


async def test_a_bus_outage_is_logged_once_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = DownBus()
    announcer = Announcer(bus, Clock())
    with caplog.at_level(logging.WARNING, logger="cadenza.application.invalidation"):
        await announcer.agents_changed()
        await announcer.definitions_changed("w1", "p")
    assert bus.attempts == 2
    assert [r.getMessage() for r in caplog.records] == [
        "cache invalidation not announced (bus unavailable): connection refused"
    ]


async def test_drafts_are_never_cached() -> None:
    cache = DefinitionCache(MemoryCache(1 << 20), Clock())
    loads: list[int] = []

    async def load() -> StoredDefinition:
        loads.append(1)
        return stored(1, "draft")

    await cache.version("w1", "p", 1, load)
    await cache.version("w1", "p", 1, load)
    assert len(loads) == 2


async def test_an_entry_filed_under_another_workspace_is_a_miss() -> None:
    shared = MemoryCache(1 << 20)
    # an entry of workspace w1 found under w2's key (a bug or a forgery): not served
    forged: JSONObject = {
        "process_id": "p",
        "version": 1,
        "content_hash": "h1",
        "status": "published",
        "document": {"id": "p"},
        "created_at": 1.0,
        "workspace_id": "w1",
    }
    await set_json(shared, cache_key("definition", "w2", "p", 1), forged, 60)
    cache = DefinitionCache(shared, Clock())

    async def load() -> StoredDefinition | None:
        return None  # w2 has no such version

    assert await cache.version("w2", "p", 1, load) is None


async def test_the_latest_version_is_kept_for_the_refresh_interval_or_until_changed() -> None:
    clock = Clock()
    cache = DefinitionCache(None, clock, refresh_s=10)
    latest = [stored(1)]

    async def load() -> StoredDefinition:
        return latest[0]

    assert (await cache.latest("w1", "p", load)) == stored(1)
    latest[0] = stored(2)
    assert (await cache.latest("w1", "p", load)) == stored(1)
    await cache.changed("w1", "p")
    assert (await cache.latest("w1", "p", load)) == stored(2)
    latest[0] = stored(3)
    clock.t += 10
    assert (await cache.latest("w1", "p", load)) == stored(3)


async def test_following_reloads_the_configuration_on_joining_and_on_each_message() -> None:
    bus = MemoryBus(remote=True)  # as Redis or Kafka: messages cross "processes"
    calls: list[tuple[str, str, str]] = []
    joined = asyncio.Event()

    def config(ws: str, kind: str, name: str) -> None:
        calls.append((ws, kind, name))
        joined.set()

    targets = Targets(lambda: None, lambda ws, pid: None, lambda: config("*", "", ""), config)
    follower = asyncio.create_task(follow(bus, "g", targets))
    try:
        await asyncio.wait_for(joined.wait(), 10)  # the full reload of (re)joining
        async with asyncio.timeout(10):
            while "g" not in bus.groups:  # subscribed: what is published now reaches it
                await asyncio.sleep(0.001)
        await Announcer(bus, Clock()).config_changed("w1", "provider", "remote")
        async with asyncio.timeout(10):
            while len(calls) < 2:
                await asyncio.sleep(0.001)
        assert calls == [("*", "", ""), ("w1", "provider", "remote")]
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await bus.aclose()
