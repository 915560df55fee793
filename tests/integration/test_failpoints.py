"""Crash points: parsed strictly, inert unless armed, a real SIGKILL on the chosen pass."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from cadenza.application import failpoints
from cadenza.application.failpoints import FailpointSpecError, arm, crash_point, parse


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    yield
    arm("")


def test_a_spec_names_a_pass_number_or_a_probability_and_a_seed() -> None:
    rules, seed = parse("after-claim-before-execute:3, mid-agent-turn:0.25,seed=7")
    assert {k: (r.at, r.probability) for k, r in rules.items()} == {
        "after-claim-before-execute": (3, 0.0),
        "mid-agent-turn": (0, 0.25),
    }
    assert seed == 7


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("after-claim:1", "expected NAME:N or NAME:P"),
        ("mid-agent-turn", "expected NAME:N or NAME:P"),
        ("mid-agent-turn:0", "the pass number starts at 1"),
        ("mid-agent-turn:1.5", "probability must be in (0, 1]"),
        ("mid-agent-turn:x", "'x' is not a number"),
        ("seed=abc", "'abc' is not a number"),
    ],
)
def test_a_malformed_spec_is_refused_with_the_reason(spec: str, problem: str) -> None:
    with pytest.raises(FailpointSpecError) as caught:
        parse(spec)
    assert problem in str(caught.value)


def test_disarmed_points_do_nothing() -> None:
    arm("")
    assert failpoints._armed is False
    for name in failpoints.POINTS:
        crash_point(name)


def test_an_armed_point_passes_until_its_turn() -> None:
    arm("after-claim-before-execute:3")
    crash_point("after-claim-before-execute")
    crash_point("after-claim-before-execute")
    crash_point("mid-agent-turn")  # not armed
    assert failpoints._rules["after-claim-before-execute"].passes == 2


CHILD = """
import sys
from cadenza.application.failpoints import arm, crash_point
arm(sys.argv[1])
for i in range(1, 6):
    print(i, flush=True)
    crash_point("after-execute-before-complete")
print("survived", flush=True)
"""


@pytest.mark.parametrize(("spec", "printed"), [("after-execute-before-complete:3", "1 2 3")])
def test_a_due_point_sigkills_its_own_process(spec: str, printed: str) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, spec], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == -signal.SIGKILL
    assert r.stdout.split() == printed.split()
    assert r.stderr == "failpoint after-execute-before-complete triggered (pass 3)\n"


def test_a_certain_probability_kills_on_the_first_pass() -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, "after-execute-before-complete:1.0,seed=3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (r.returncode, r.stdout.split()) == (-signal.SIGKILL, ["1"])
