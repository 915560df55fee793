"""The rotation rules of ``application/rotation.py`` on a scripted store: a lost
compare-and-swap takes the winner's result, sealing round-trips only with the old secret, and
the grace window is measured from the rotation that replaced the token."""

from __future__ import annotations

import dataclasses
from typing import cast

from cadenza.application.ports_api import IdentityStore, Session
from cadenza.application.rotation import hash_key, new_secret, rotate, seal, unseal


class Rows:
    """The session table of one session, with the winner of a race applied on demand."""

    def __init__(self, session: Session) -> None:
        self.row = session
        self.retired: dict[str, str] = {}
        self.race: Session | None = None  # applied just before the next compare-and-swap

    async def session(self, session_id: str) -> Session | None:
        return self.row if self.row.id == session_id else None

    async def rotate_session(
        self, session_id: str, old_hash: str, new_hash: str, sealed: str, at: float
    ) -> bool:
        if self.race is not None:
            self.row, self.race = self.race, None
            self.retired[cast(str, self.row.previous_hash)] = self.row.id
        if self.row.token_hash != old_hash or self.row.revoked:
            return False
        self.row = dataclasses.replace(
            self.row, token_hash=new_hash, previous_hash=old_hash, rotated_at=at, next_sealed=sealed
        )
        self.retired[old_hash] = session_id
        return True

    async def retired_session(self, token_hash: str) -> str | None:
        return self.retired.get(token_hash)


def store(rows: Rows) -> IdentityStore:
    return cast(IdentityStore, rows)


def started(secret: str) -> Session:
    return Session("s1", "u1", hash_key(secret), 0.0, 1e12, False)


def test_a_sealed_secret_opens_only_with_the_token_it_replaced() -> None:
    old, _ = new_secret()
    fresh, raw = new_secret()
    sealed = seal(raw, old)
    assert unseal(sealed, old) == fresh
    assert unseal(sealed, new_secret()[0]) != fresh
    assert fresh not in sealed
    assert raw.hex() != sealed


async def test_a_lost_compare_and_swap_answers_with_the_winners_token() -> None:
    t0, _ = new_secret()
    rows = Rows(started(t0))
    winner, raw = new_secret()
    rows.race = dataclasses.replace(
        rows.row,
        token_hash=hash_key(winner),
        previous_hash=hash_key(t0),
        rotated_at=100.0,
        next_sealed=seal(raw, t0),
    )
    outcome = await rotate(store(rows), rows.row, t0, now=101.0, grace_s=10)
    assert outcome.secret == winner
    assert outcome.reuse is None
    assert rows.row.token_hash == hash_key(winner)  # no second rotation


async def test_grace_is_counted_from_the_replacing_rotation() -> None:
    t0, _ = new_secret()
    rows = Rows(started(t0))
    first = await rotate(store(rows), rows.row, t0, now=100.0, grace_s=10)
    assert first.secret is not None
    within = await rotate(store(rows), rows.row, t0, now=110.0, grace_s=10)
    assert within.secret == first.secret
    assert within.reuse is None
    late = await rotate(store(rows), rows.row, t0, now=110.5, grace_s=10)
    assert late.secret is None
    assert late.reuse is not None
    assert late.reuse.retired_s_ago == 10.5


async def test_an_older_token_is_reuse_and_a_guess_is_not() -> None:
    t0, _ = new_secret()
    rows = Rows(started(t0))
    t1 = (await rotate(store(rows), rows.row, t0, now=1.0, grace_s=60)).secret
    assert t1 is not None
    assert (await rotate(store(rows), rows.row, t1, now=2.0, grace_s=60)).secret
    older = await rotate(store(rows), rows.row, t0, now=3.0, grace_s=60)
    assert older.reuse is not None
    assert older.reuse.retired_s_ago is None
    guess = await rotate(store(rows), rows.row, "not-a-token", now=3.0, grace_s=60)
    assert guess.secret is None
    assert guess.reuse is None
