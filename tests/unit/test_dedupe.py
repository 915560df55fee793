"""The consumers' filter of redelivered bus messages: each (instance, seq) passes once,
within bounded memory."""

from __future__ import annotations

from cadenza.application.dedupe import SeenSequences
from cadenza.application.ports_bus import BusMessage


def msg(instance_id: str, seq: int) -> BusMessage:
    return BusMessage("TaskCompleted", instance_id, "default", seq, 0.0)


def test_a_redelivered_message_is_dropped_and_a_new_one_passes() -> None:
    seen = SeenSequences()
    assert [seen.fresh(msg("a", s)) for s in (1, 2, 3)] == [True, True, True]
    assert [seen.fresh(msg("a", s)) for s in (1, 2, 3, 4)] == [False, False, False, True]
    assert seen.fresh(msg("b", 2)) is True  # sequences are per instance


def test_a_message_after_a_hole_passes_and_so_does_the_hole_later() -> None:
    seen = SeenSequences()
    assert seen.fresh(msg("a", 5)) is True
    assert seen.fresh(msg("a", 7)) is True
    assert seen.fresh(msg("a", 6)) is True
    assert [seen.fresh(msg("a", s)) for s in (5, 6, 7)] == [False, False, False]


def test_memory_is_bounded_per_instance_and_in_instances() -> None:
    seen = SeenSequences(per_instance=2, instances=2)
    for s in (10, 20, 30, 40):  # holes: the floor rises past the oldest remembered
        assert seen.fresh(msg("a", s)) is True
    assert seen.fresh(msg("a", 15)) is False  # below the risen floor: counted as seen
    assert seen.fresh(msg("b", 1)) is True
    assert seen.fresh(msg("c", 1)) is True  # "a" is forgotten: the least recently seen
    assert len(seen) == 2
    assert (
        seen.fresh(msg("a", 40)) is True
    )  # forgotten: a redelivery passes (consumers are idempotent)
