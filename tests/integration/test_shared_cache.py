"""The shared cache between processes: two services on one database, one Redis bus and one
Redis cache (each with connections of its own, as two processes would have). Changes reach
the other service through the invalidation message, never through time: the clocks are fake
and the refresh interval is an hour."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from cadenza.application.agents import AgentRegistry
from cadenza.application.definitions import Definitions
from cadenza.application.ports_bus import BusMessage
from cadenza.bootstrap.cache import Caching, open_caching
from cadenza.domain.agent import AgentType
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.sql.agents import SqlAgentRepository
from cadenza.infrastructure.sql.database import create_engine, prepare_sqlite_file, upgrade
from cadenza.infrastructure.sql.store import SqlStore
from cadenza.infrastructure.templating import JinjaTemplates
from cadenza.settings import Settings

HOUR = 3600.0
DEAD_REDIS = "redis://127.0.0.1:1/0"  # port 1: connection refused at once


class FakeClock:
    def now(self) -> float:
        return 1000.0


def document(version_note: str) -> JSONObject:
    return {
        "schema": "cadenza/v1",
        "id": "p",
        "name": version_note,
        "nodes": [{"id": "a", "type": "transform", "config": {"output": version_note}}],
        "edges": [],
    }


@dataclass
class Service:
    """One process's view: its store, registry, definitions and cache wiring."""

    store: SqlStore
    agents: AgentRegistry
    definitions: Definitions
    caching: Caching
    templates: JinjaTemplates
    definition_reads: list[str] = field(default_factory=list)
    agent_reads: list[str] = field(default_factory=list)
    messages: list[BusMessage] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def seen(self, message: BusMessage) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def next_message(self, type_name: str) -> BusMessage:
        """The next message of ``type_name`` this service applied (probes skipped)."""
        while True:
            for i, m in enumerate(self.messages):
                if m.type == type_name:
                    del self.messages[: i + 1]
                    return m
            self._arrived.clear()
            await self._arrived.wait()

    async def close(self) -> None:
        await self.caching.aclose()
        await self.store.close()
        self.templates.close()


async def service(url: str, bus_url: str, redis_url: str) -> Service:
    settings = Settings(database_url=url, bus_url=bus_url, redis_url=redis_url)
    clock = FakeClock()
    store = SqlStore(create_engine(url))
    caching = open_caching(settings, clock)
    counter = itertools.count(1)
    agents = AgentRegistry(
        SqlAgentRepository(store.engine, clock),
        clock,
        lambda: f"a{next(counter)}-{id(store)}",
        HOUR,
        caching.snapshots,
        caching.announcer.agents_changed,
    )
    templates = JinjaTemplates()
    definitions = Definitions(
        store, templates, JsonSchemaChecks(), clock, cache=caching.definitions
    )
    s = Service(store, agents, definitions, caching, templates)

    def count(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        if "FROM definitions" in statement:
            s.definition_reads.append(statement)
        if "FROM agents" in statement:
            s.agent_reads.append(statement)

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    caching.start(agents, s.seen)
    return s


async def joined(sender: Service, *receivers: Service) -> None:
    """Wait until every receiver follows the bus: probes until each has seen one."""
    assert sender.caching.bus is not None
    while not all(any(m.type == "Probe" for m in r.messages) for r in receivers):
        await sender.caching.bus.publish([BusMessage("Probe", "", "", 0, 0.0)])
        await asyncio.sleep(0.01)  # a pause between probes, not a wait for an outcome


@pytest.fixture
async def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cadenza.db'}"
    prepare_sqlite_file(url)
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture
async def pair(
    database: str, redis_bus_url: str, redis_url: str
) -> AsyncIterator[tuple[Service, Service]]:
    a = await service(database, redis_bus_url, redis_url)
    b = await service(database, redis_bus_url, redis_url)
    await joined(a, b)
    await joined(b, a)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def names(registry: AgentRegistry) -> list[str]:
    _, reasons = await registry.unavailable(["x"])
    return sorted(r.split(":")[0] for r in reasons)


async def test_a_registration_on_one_service_is_seen_by_the_other_once_announced(
    pair: tuple[Service, Service],
) -> None:
    a, b = pair
    assert await names(b.agents) == []  # B caches the empty list for an hour
    await a.agents.register("echo", AgentType.WORKER, ["y"], {}, workspace_id=None)
    await b.next_message("AgentsChanged")
    assert await names(b.agents) == ["echo"]
    await a.agents.deregister((await a.agents.agents())[0].id)
    await b.next_message("AgentsChanged")
    assert await names(b.agents) == []


async def test_a_changed_agent_list_is_read_from_the_database_once_for_both_services(
    pair: tuple[Service, Service],
) -> None:
    a, b = pair
    await a.agents.register("echo", AgentType.WORKER, ["y"], {})
    await b.next_message("AgentsChanged")
    a.agent_reads.clear()
    b.agent_reads.clear()
    assert await names(a.agents) == ["echo"]
    assert await names(b.agents) == ["echo"]
    assert (len(a.agent_reads), len(b.agent_reads)) == (1, 0)  # B read A's snapshot


async def test_a_cold_service_reads_a_published_version_from_the_cache(
    pair: tuple[Service, Service],
) -> None:
    a, b = pair
    stored = await a.definitions.publish(document("one"))
    a.definition_reads.clear()
    await a.definitions.plan("p", stored.version)  # A reads it and shares it
    assert len(a.definition_reads) == 1
    plan_b = (await b.definitions.plan("p", stored.version))[1]
    assert b.definition_reads == []
    assert plan_b.definition.name == "one"


async def test_publishing_moves_every_service_to_the_new_latest_version(
    pair: tuple[Service, Service],
) -> None:
    a, b = pair
    await a.definitions.publish(document("one"))
    await b.next_message("DefinitionPublished")
    assert (await b.definitions.plan("p"))[0].version == 1  # B keeps this for an hour
    await a.definitions.publish(document("two"))
    message = await b.next_message("DefinitionPublished")
    assert (message.workspace_id, message.data) == ("default", {"process_id": "p"})
    stored, plan = await b.definitions.plan("p")
    assert (stored.version, plan.definition.name) == (2, "two")


async def test_one_workspace_never_reads_another_workspaces_cached_version(
    pair: tuple[Service, Service],
) -> None:
    a, b = pair
    stored = await a.definitions.publish(document("one"))  # workspace "default"
    await a.definitions.plan("p", stored.version)  # cached under "default"
    b.definition_reads.clear()
    found, _ = await b.definitions.plan("p", stored.version, workspace="other")
    assert len(b.definition_reads) == 1  # a miss for "other": read from the database
    assert found.workspace_id == "default"  # what the database says, for the caller to judge
    # and the entry was not copied under the other workspace's key
    b.definition_reads.clear()
    await b.definitions.plan("p", stored.version, workspace="other")
    assert len(b.definition_reads) == 1


async def test_with_redis_down_both_services_stay_correct_from_the_database(
    database: str, redis_bus_url: str
) -> None:
    a = await service(database, redis_bus_url, DEAD_REDIS)
    b = await service(database, redis_bus_url, DEAD_REDIS)
    try:
        await joined(a, b)
        assert await names(b.agents) == []
        await a.agents.register("echo", AgentType.WORKER, ["y"], {})
        await b.next_message("AgentsChanged")
        assert await names(b.agents) == ["echo"]
        stored = await a.definitions.publish(document("one"))
        await b.next_message("DefinitionPublished")
        b.definition_reads.clear()
        found, plan = await b.definitions.plan("p", stored.version)
        assert (found.version, plan.definition.name, len(b.definition_reads)) == (1, "one", 1)
    finally:
        await a.close()
        await b.close()
