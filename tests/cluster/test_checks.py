"""The cluster suite's checks catch what they claim to (no processes: fast, in ``make test``)."""

from __future__ import annotations

import pytest
from tests.cluster.metrics import Window, parse, problems, unknown_node_types
from tests.cluster.run import accepted_twice, tracebacks
from tests.cluster.sse import Seen
from tests.cluster.topology import ExternalWorker, Topology

JOURNAL = [(1, "InstanceStarted"), (2, "TaskScheduled"), (3, "TaskCompleted")]


def _seen(events: list[tuple[int, str]]) -> Seen:
    seen = Seen()
    seen.events["i1"] = events
    return seen


def test_a_stream_equal_to_the_journal_has_no_problems() -> None:
    assert _seen(list(JOURNAL)).problems({"i1": JOURNAL}) == []


@pytest.mark.parametrize(
    "streamed",
    [
        JOURNAL[:2],  # the last event missing
        [JOURNAL[0], JOURNAL[2]],  # a gap
        [*JOURNAL[:2], JOURNAL[1], JOURNAL[2]],  # one event twice (a resume that repeats)
        [JOURNAL[1], JOURNAL[0], JOURNAL[2]],  # out of order
        [],  # an instance the stream never mentioned
    ],
)
def test_a_stream_that_differs_from_the_journal_is_a_problem(
    streamed: list[tuple[int, str]],
) -> None:
    found = _seen(streamed).problems({"i1": JOURNAL})
    assert len(found) == 1
    assert found[0].startswith("i1: stream ")


API = """# TYPE task_executions_total counter
task_executions_total{node_type="transform",status="completed"} 7.0
task_executions_total{node_type="wait",status="completed"} 3.0
task_executions_total{node_type="wait",status="failed"} 1.0
# TYPE process_instances_active gauge
process_instances_active 0.0
"""
WORKER = """# TYPE task_executions_total counter
task_executions_total{node_type="llm",status="completed"} 5.0
task_executions_total{node_type="unknown",status="completed"} 2.0
# TYPE process_instances_active gauge
process_instances_active 1.0
"""


def test_metrics_are_summed_over_processes_and_compared_with_the_store() -> None:
    api, worker = parse("api-1", API), parse("worker-1", WORKER)
    assert api.total("task_executions_total", status="completed") == 10.0
    assert worker.total("task_executions_total") == 7.0
    before = Window(scraped=4.0, stored=100)
    # 17 counted in all, 4 before the window: 13 in it; the journal gained 13 (113 - 100)
    assert problems(before, [api], stored=106, running=0) == []
    assert problems(before, [api, worker], stored=113, running=0) == [
        "worker-1: process_instances_active = 1, the store has 0 running",
    ]
    assert unknown_node_types([api, worker]) == ["worker-1"]
    assert problems(before, [api], stored=107, running=0) == [
        "task_executions_total{status=completed} rose by 6 over the processes, the journal by 7"
    ]


def test_a_result_accepted_twice_is_found_in_the_poller_log() -> None:
    log = "external worker w polling http://x\naccepted a:n::1\naccepted b:n::1\naccepted a:n::1\n"
    assert accepted_twice(log) == ["a:n::1"]
    assert accepted_twice("accepted a:n::1\naccepted a:n::2\n") == []


def test_each_topology_line_adds_its_processes() -> None:
    today = Topology("postgresql://x/y")
    assert [n for n, _ in today.members()] == [
        "api-1", "api-2", "worker-1", "worker-2", "worker-3",
    ]  # fmt: skip
    assert today.role("worker").has_port is False
    full = Topology(
        "postgresql://x/y",
        roles={"api": 2, "worker": 3, "agents": 2, "mcp-proxy": 1},
        ops_ports=True,
        external_worker=ExternalWorker(polls=2),
    )
    assert [n for n, _ in full.members()] == [
        "api-1", "api-2", "agents-1", "agents-2", "mcp-proxy-1",
        "worker-1", "worker-2", "worker-3", "external-worker-1",
    ]  # fmt: skip
    assert full.role("worker").has_port is True
    assert full.role("worker").argv == ("cadenza", "worker", "--port", "{port}")
    with pytest.raises(ValueError, match="unknown roles"):
        Topology("postgresql://x/y", roles={"scheduler": 1}).members()


def test_a_known_handled_error_is_told_apart_from_other_tracebacks() -> None:
    known = (
        "ERROR cadenza.application.engine.sweeper: lease renewal failed\n"
        "Traceback (most recent call last):\n  ...\n"
        "asyncmy.errors.OperationalError: (1213, 'Deadlock found when trying to get lock')\n"
    )
    other = "ERROR cadenza.x: boom\nTraceback (most recent call last):\nValueError: x\n"
    assert tracebacks("worker w running\n" + known + "INFO cadenza.y: fine\n") == (0, 1)
    assert tracebacks(known + other) == (1, 1)
    assert tracebacks("Traceback (most recent call last):\nKeyError\n") == (1, 0)


def test_records_of_the_console_renderer_are_told_apart_too() -> None:
    """`cadenza worker` logs through structlog's console renderer: a record starts with its
    timestamp and level, and its traceback is a box, not the standard library's text."""
    known = (
        "2026-12-02T13:34:27.405991Z [error    ] Error in post_writer           "
        "[mcp.client.streamable_http] instance_id=i1\n"
        "╭──── Traceback (most recent call last) ────╮\n"
        "│ RemoteProtocolError: Server disconnected without sending a response. │\n"
        "╰───────────────────────────────────────────╯\n"
    )
    other = (
        "2026-12-02T13:34:28.000000Z [error    ] boom [cadenza.x]\n"
        "╭──── Traceback (most recent call last) ────╮\n│ ValueError: x │\n╰────╯\n"
    )
    fine = "2026-12-02T13:34:29.000000Z [warning  ] MCP session ended [cadenza.y]\n"
    assert tracebacks("worker w running\n" + known + fine) == (0, 1)
    assert tracebacks(known + other + fine) == (1, 1)
