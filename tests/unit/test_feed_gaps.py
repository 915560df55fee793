"""The live feed's gap rule: a feed id missing between visible ones (a commit not visible
yet) holds the stream back up to ``gap_wait_s``; a late commit inside the wait is streamed in
order; past the wait the feed moves on with a warning."""

from __future__ import annotations

import logging

import pytest

from cadenza.application.feed import EventHub
from cadenza.application.ports_api import FeedCursor, FeedEntry
from cadenza.domain.events import InstanceCompleted


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


class Feed:
    """Queries' feed methods over a list of visible entries."""

    def __init__(self) -> None:
        self.visible: list[FeedEntry] = []

    async def feed_head(self) -> FeedCursor:
        return FeedCursor(0, 0)

    async def feed_after(self, cursor: FeedCursor | None, limit: int) -> list[FeedEntry]:
        after = (cursor.feed_id, cursor.seq) if cursor else (0, 0)
        return sorted((e for e in self.visible if e.key > after), key=lambda e: e.key)[:limit]


def entry(feed_id: int) -> FeedEntry:
    event = InstanceCompleted(instance_id=f"i{feed_id}", outputs={})
    return FeedEntry(feed_id, 1, "ws", "p", event)


async def read(hub: EventHub) -> list[int]:
    await hub._read_once()
    return [e.feed_id for e in hub._entries]


async def test_a_late_commit_inside_the_wait_is_streamed_in_order() -> None:
    feed, clock = Feed(), Clock()
    hub = EventHub(feed, clock, gap_wait_s=10.0)  # type: ignore[arg-type]
    feed.visible = [entry(1), entry(3)]  # the hub's pump is not started: reads are explicit
    assert await read(hub) == [1]  # 2 took its id, not visible yet: 3 waits
    clock.t += 9.0
    assert await read(hub) == [1]
    feed.visible.append(entry(2))  # the slow commit lands inside the wait
    assert await read(hub) == [1, 2, 3]
    assert hub.gaps_passed == 0


async def test_past_the_wait_the_feed_moves_on_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed, clock = Feed(), Clock()
    hub = EventHub(feed, clock, gap_wait_s=10.0)  # type: ignore[arg-type]
    feed.visible = [entry(1), entry(4)]
    assert await read(hub) == [1]
    clock.t += 10.0
    with caplog.at_level(logging.WARNING, "cadenza.application.feed"):
        assert await read(hub) == [1, 4]
    assert hub.gaps_passed == 1
    assert "feed ids 2-3 still missing after 10.0 s" in caplog.text
