"""Agent snapshots in the shared cache: a change makes every reader read the table again,
and a read that raced a change never becomes the snapshot others get."""

from __future__ import annotations

from cadenza.application.agent_snapshots import AgentSnapshots, decode, encode
from cadenza.domain.agent import Agent, AgentStatus, AgentType
from cadenza.infrastructure.cache.memory import MemoryCache


def agent(name: str, workspace: str | None = None) -> Agent:
    return Agent(
        f"id-{name}",
        name,
        AgentType.HTTP,
        frozenset({"a", "b"}),
        {"url": "http://peer/x"},
        2,
        3,
        status=AgentStatus.HEALTHY,
        last_seen=12.5,
        workspace_id=workspace,
    )


def test_an_agent_survives_the_snapshot_encoding() -> None:
    agents = [agent("one"), agent("two", "w1")]
    assert decode(encode(agents)) == agents


def test_a_malformed_snapshot_is_a_miss() -> None:
    assert decode([{"id": "x"}]) is None
    assert decode({"not": "a list"}) is None


async def test_readers_share_one_table_read_until_an_agent_changes() -> None:
    cache = MemoryCache(1 << 20)
    table = [agent("one")]
    reads: list[int] = []

    async def fetch() -> list[Agent]:
        reads.append(1)
        return list(table)

    first, second = AgentSnapshots(cache, 60), AgentSnapshots(cache, 60)
    assert await first.load(fetch) == [agent("one")]
    assert await second.load(fetch) == [agent("one")]
    assert len(reads) == 1
    table.append(agent("two"))
    await first.changed()
    assert await second.load(fetch) == [agent("one"), agent("two")]
    assert len(reads) == 2


async def test_a_read_that_raced_a_change_is_not_served_to_others() -> None:
    cache = MemoryCache(1 << 20)
    snapshots = AgentSnapshots(cache, 60)
    table = [agent("one")]

    async def racing_fetch() -> list[Agent]:
        stale = list(table)
        table.append(agent("two"))  # a registration commits while this read is in flight
        await snapshots.changed()
        return stale

    async def fetch() -> list[Agent]:
        return list(table)

    assert await snapshots.load(racing_fetch) == [agent("one")]
    assert await snapshots.load(fetch) == [agent("one"), agent("two")]
