"""Named crash points: deterministic SIGKILLs for crash tests, off unless armed.

``crash_point("after-claim-before-execute")`` costs one check of a module-level bool while
disarmed (the default). The composition root arms points from ``CADENZA_FAILPOINTS``; a test
sets that variable, never production. A triggered point SIGKILLs its own process: no cleanup,
no flush, nothing after it runs, as when the machine loses power (for the database's view).

Spec: comma-separated ``name:N`` (trigger on the N-th pass, 1-based) or ``name:P`` (trigger on
each pass with probability ``0 < P <= 1``, written with a dot), plus an optional ``seed=S``
for the probabilities, e.g. ``after-claim-before-execute:3`` or ``mid-agent-turn:0.2,seed=7``.

``mid-outbox-relay`` only passes when the bus crosses processes (the in-process bus writes
no outbox): the relay published a page of outbox rows and has not deleted them yet.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass

POINTS = frozenset(
    {
        "after-journal-before-commit",  # the batch's rows are written; the commit is not done
        "after-commit-before-dispatch",  # committed; leased tasks not yet handed to the worker
        "mid-agent-turn",  # an agent's model turn is journaled; its tool call not yet made
        "during-sweeper-requeue",  # the sweeper re-queued expired or released leases
        "after-claim-before-execute",  # a leased task reached the worker; not yet executed
        "after-execute-before-complete",  # side effect done; its result not yet recorded
        "mid-outbox-relay",  # outbox rows published to the bus, not yet deleted
        "after-blob-write-before-commit",  # a batch's offloaded payloads are written, its rows not
    }
)

_armed = False
_rules: dict[str, _Rule] = {}
_rng = random.Random(0)


@dataclass
class _Rule:
    at: int  # trigger on this pass (1-based); 0: by probability
    probability: float
    passes: int = 0


class FailpointSpecError(ValueError):
    """``CADENZA_FAILPOINTS`` names an unknown point or has a malformed entry."""


def parse(spec: str) -> tuple[dict[str, _Rule], int]:
    rules: dict[str, _Rule] = {}
    seed = 0
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        if entry.startswith("seed="):
            seed = int(_number(entry, entry[5:], int))
            continue
        name, sep, value = entry.partition(":")
        if name not in POINTS or not sep:
            known = ", ".join(sorted(POINTS))
            raise FailpointSpecError(f"failpoint {entry!r}: expected NAME:N or NAME:P ({known})")
        if "." in value:
            p = _number(entry, value, float)
            if not 0 < p <= 1:
                raise FailpointSpecError(f"failpoint {entry!r}: probability must be in (0, 1]")
            rules[name] = _Rule(0, p)
        else:
            n = int(_number(entry, value, int))
            if n < 1:
                raise FailpointSpecError(f"failpoint {entry!r}: the pass number starts at 1")
            rules[name] = _Rule(n, 0.0)
    return rules, seed


def _number(entry: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise FailpointSpecError(f"failpoint {entry!r}: {text!r} is not a number") from None


def arm(spec: str) -> None:
    """Arm the points ``spec`` names (an empty spec disarms all); called at startup."""
    global _armed, _rng
    rules, seed = parse(spec)
    _rules.clear()
    _rules.update(rules)
    _rng = random.Random(seed)
    _armed = bool(rules)


def crash_point(name: str) -> None:
    """SIGKILL this process here if the point is armed and due; otherwise do nothing."""
    if _armed:
        _pass(name)


def _pass(name: str) -> None:
    rule = _rules.get(name)
    if rule is None:
        return
    rule.passes += 1
    due = rule.passes == rule.at if rule.at else _rng.random() < rule.probability
    if due:
        os.write(2, f"failpoint {name} triggered (pass {rule.passes})\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
