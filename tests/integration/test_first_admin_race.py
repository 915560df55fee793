"""Two API processes starting at once on an empty database (Compose's two APIs, Kubernetes'
API replicas): both see no users and both try to create the first admin. The one whose insert
loses reads the winner's admin back and starts normally. The interleaving is forced (both
count the users before either inserts; then one inserts, then the other), on each backend,
with one engine per process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cadenza.application.identity import Identity
from cadenza.application.ports_api import User
from cadenza.bootstrap import SystemClock
from cadenza.infrastructure.ids import IdSource
from cadenza.infrastructure.security import JwtCodec, ScryptHasher
from cadenza.infrastructure.sql.database import create_engine, upgrade
from cadenza.infrastructure.sql.identity import SqlIdentityStore

PASSWORD = "a-long-enough-password"


class Race:
    """What the two stores share: both must have counted before either inserts, and the
    second inserts once the first's insert is over."""

    def __init__(self) -> None:
        self.both_counted = asyncio.Barrier(2)
        self.first_inserted = asyncio.Event()
        self.counts: list[int] = []


class RacingStore(SqlIdentityStore):
    """The real store of one process, its steps ordered by ``race``."""

    def __init__(self, engine: AsyncEngine, race: Race, *, first: bool) -> None:
        super().__init__(engine)
        self.race = race
        self.first = first

    async def count_users(self) -> int:
        found = await super().count_users()
        self.race.counts.append(found)
        await self.race.both_counted.wait()
        return found

    async def add_user(self, user: User) -> None:
        if not self.first:
            await self.race.first_inserted.wait()
        try:
            await super().add_user(user)
        finally:
            if self.first:
                self.race.first_inserted.set()


def identity(store: SqlIdentityStore) -> Identity:
    return Identity(store, ScryptHasher(n=2**10), JwtCodec("j" * 40), SystemClock(), IdSource())


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """One migrated, empty database; an engine (a connection pool) for each process."""
    await asyncio.to_thread(upgrade, database_url)
    first, second = create_engine(database_url), create_engine(database_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def test_the_process_that_loses_the_insert_sees_the_first_admin_and_starts(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    race = Race()
    winner = identity(RacingStore(engines[0], race, first=True))
    loser = identity(RacingStore(engines[1], race, first=False))
    made, seen = await asyncio.wait_for(
        asyncio.gather(winner.ensure_first_admin(PASSWORD), loser.ensure_first_admin(PASSWORD)),
        60,
    )
    assert race.counts == [0, 0]  # both found no users: the race really happened
    assert made is not None
    assert (made.username, made.is_admin) == ("admin", True)
    assert seen is None
    # one admin, one default workspace, the admin its admin
    store = SqlIdentityStore(engines[1])
    assert [u.id for u in await store.users()] == [made.id]
    assert [(w.id, w.name) for w in await store.workspaces()] == [("default", "default")]
    assert await store.memberships(made.id) == {"default": "admin"}
    # the loser's process serves the winner's admin
    tokens = await loser.login("admin", PASSWORD)
    assert tokens.access_token


async def test_a_start_after_the_first_admin_exists_changes_nothing(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    made = await identity(SqlIdentityStore(engines[0])).ensure_first_admin(PASSWORD)
    assert made is not None
    later = identity(SqlIdentityStore(engines[1]))
    assert await later.ensure_first_admin("another-long-password") is None
    assert [u.id for u in await later.store.users()] == [made.id]
