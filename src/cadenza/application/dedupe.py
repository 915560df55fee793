"""Drop bus messages seen already: the bus delivers at least once (a relay that crashed
between publishing and deleting publishes its rows again), so consumers filter on the
event's identity ``(instance_id, seq)``.

Bounded both ways: per instance, sequences at or below a floor (one below the first seen,
raised as sequences arrive without a hole) count as seen and at most ``per_instance`` newer
ones are remembered (past that the floor rises to the oldest of them);
at most ``instances`` instances are remembered, the least recently seen forgotten first. A
message older than what was forgotten may pass again: consumers must stay idempotent (a
wake-up, a feed read), this only spares them the work.
"""

from __future__ import annotations

from collections import OrderedDict

from cadenza.application.ports_bus import BusMessage

PER_INSTANCE = 1_024  # sequences remembered above an instance's floor
INSTANCES = 10_000  # instances remembered


class SeenSequences:
    def __init__(self, per_instance: int = PER_INSTANCE, instances: int = INSTANCES) -> None:
        self._per_instance = per_instance
        self._instances = instances
        self._seen: OrderedDict[str, tuple[int, set[int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def fresh(self, message: BusMessage) -> bool:
        """True the first time ``message`` is seen (and remember it), False after."""
        iid, seq = message.instance_id, message.seq
        # first sight: what came before was published before we listened (or is a duplicate)
        floor, above = self._seen.pop(iid, (seq - 1, set()))
        self._seen[iid] = (floor, above)  # most recently seen last
        if seq <= floor or seq in above:
            return False
        above.add(seq)
        while above and min(above) == floor + 1:  # contiguous from the floor: fold in
            floor += 1
            above.discard(floor)
        if len(above) > self._per_instance:
            oldest = min(above)
            above.discard(oldest)
            floor = max(floor, oldest)
            above.difference_update([s for s in above if s <= floor])
        self._seen[iid] = (floor, above)
        if len(self._seen) > self._instances:
            self._seen.popitem(last=False)
        return True
