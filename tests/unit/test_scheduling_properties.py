"""Property tests of the pure scheduler over random DAGs of transform and condition nodes.

A tiny simulator plays the engine: it applies each decision by recording the events the engine
records, then lets tasks finish in an order hypothesis draws (a condition on one of its ports,
a transform on ``out``; now and then a task fails unhandled). Edge resolution, readiness and
skips are computed here again from the definition, independently of ``scheduling``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from enum import Enum

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.checks import RealChecks

from cadenza.domain import events as ev
from cadenza.domain import scheduling as s
from cadenza.domain.definition import DEFAULT_PORT, ERROR_PORT, Definition, Edge, Graph, Join, Node
from cadenza.domain.instance import Instance, Stamp
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.plan import ANY_OUTCOME, Plan, compile_plan
from cadenza.domain.status import InstanceStatus, TaskStatus
from cadenza.domain.tasks import ROOT_SCOPE, Task
from cadenza.domain.validation import parse_definition

MAX_NODES = 7
PORTS: dict[str, tuple[str, ...]] = {"transform": (DEFAULT_PORT,), "condition": ("a", "b")}
START, END = "start", "end"  # the implicit nodes: generated ids are n0, n1, ... so these are free


def _config(node_type: str, index: int) -> JSONObject:
    if node_type == "condition":
        return {"branches": [{"port": "a", "when": "x"}], "default": "b"}
    return {"output": index}


@st.composite
def definitions(draw: st.DrawFn) -> Definition:
    """A valid DAG: edges only go from a lower to a higher index, on ports the source has."""
    count = draw(st.integers(1, MAX_NODES))
    nodes = []
    for i in range(count):
        node_type = draw(st.sampled_from(sorted(PORTS)))
        join = draw(st.sampled_from(Join))
        nodes.append(Node(id=f"n{i}", type=node_type, config=_config(node_type, i), join=join))
    edges = [
        Edge(source.id, port, target.id)
        for j, target in enumerate(nodes)
        for source in nodes[:j]
        for port in PORTS[source.type]
        if draw(st.booleans())
    ]
    return Definition(id="generated", name="generated", graph=Graph(tuple(nodes), tuple(edges)))


# ---- the model: edges and readiness, as DESIGN §4 states them ---------------------------------
class Edges(Enum):
    PENDING = "pending"
    TAKEN = "taken"
    NOT_TAKEN = "not taken"


def implicit_edges(definition: Definition) -> dict[str, list[Edge]]:
    """Incoming edges per node once the implicit start and end are added."""
    graph = definition.graph
    has_incoming = {e.target for e in graph.edges}
    has_outgoing = {e.source for e in graph.edges}
    edges = [Edge(START, DEFAULT_PORT, n.id) for n in graph.nodes if n.id not in has_incoming]
    edges += graph.edges
    edges += [Edge(n.id, ANY_OUTCOME, END) for n in graph.nodes if n.id not in has_outgoing]
    incoming: dict[str, list[Edge]] = {START: [], END: []}
    incoming.update({n.id: [] for n in graph.nodes})
    for e in edges:
        incoming[e.target].append(e)
    return incoming


def resolve(inst: Instance, edge: Edge) -> Edges:
    task = inst.task_at(ROOT_SCOPE, edge.source)
    if task is None or task.active:
        return Edges.PENDING
    taken = (task.status is TaskStatus.COMPLETED and edge.port in (ANY_OUTCOME, *task.ports)) or (
        task.status is TaskStatus.FAILED and task.handled and edge.port in (ANY_OUTCOME, ERROR_PORT)
    )
    return Edges.TAKEN if taken else Edges.NOT_TAKEN


class Sim:
    """Plays the engine for one instance of a flat graph, checking every decision it applies."""

    def __init__(self, definition: Definition, limit: int | None) -> None:
        self.definition = definition
        self.plan: Plan = compile_plan(definition)
        self.incoming = implicit_edges(definition)
        self.join = {n.id: n.join for n in self.plan.root.nodes.values()}
        self.limit = limit
        self.failed_node: str | None = None
        self._ids: Iterator[int] = itertools.count(1)
        self._now = 0.0
        self.inst = Instance("instance-1")
        self.inst.record(
            self._stamp(),
            ev.InstanceStarted(process_id="p", version=1, definition_hash="h", inputs={}),
        )

    # ---- plumbing ------------------------------------------------------------------------
    def _new_id(self) -> str:
        return f"id-{next(self._ids)}"

    def _stamp(self) -> Stamp:
        self._now += 1.0
        return Stamp(self._now, self._new_id)

    def _record(self, event: ev.Event) -> None:
        self.inst.record(self._stamp(), event)
        assert self.running_workers() <= (self.limit or len(self.inst.tasks)), "(e) too many"

    def running(self) -> bool:
        return self.inst.status is InstanceStatus.RUNNING

    def running_workers(self) -> int:
        return sum(
            1
            for t in self.inst.tasks.values()
            if t.active and NODE_TYPES[t.node_type].execution is Execution.WORKER
        )

    def states(self, node_id: str) -> list[Edges]:
        return [resolve(self.inst, e) for e in self.incoming[node_id]]

    def ready(self, node_id: str) -> bool:
        states = self.states(node_id)
        if not states:
            return True
        if self.join[node_id] is Join.ANY:
            return Edges.TAKEN in states
        return Edges.PENDING not in states and Edges.TAKEN in states

    def doomed(self, node_id: str) -> bool:
        states = self.states(node_id)
        return bool(states) and all(x is Edges.NOT_TAKEN for x in states)

    def unstarted(self) -> list[str]:
        return [n for n in self.plan.root.order if self.inst.task_at(ROOT_SCOPE, n) is None]

    # ---- the engine's loop ---------------------------------------------------------------
    def settle(self) -> None:
        """Apply decisions until there are none (each pass creates a task or ends the run)."""
        for _ in range(len(self.plan.root.nodes) + 2):
            if not self.running():
                return
            decisions = s.schedule(self.plan, self.inst, self.limit)
            if not decisions:
                self.check_quiet()
                return
            self.check_decisions(decisions)
            for d in decisions:
                if not self.running():
                    break
                self.apply(d)
        raise AssertionError("(a) the scheduler keeps deciding: it did not settle")

    def check_decisions(self, decisions: list[s.Decision]) -> None:
        touched = [d.node_id for d in decisions if isinstance(d, s.StartNode | s.SkipNode)]
        assert len(touched) == len(set(touched)), f"(d) a node decided twice: {decisions}"
        starts = 0
        for d in decisions:
            if isinstance(d, s.StartNode | s.SkipNode):
                assert d.scope == ROOT_SCOPE
                assert self.inst.task_at(ROOT_SCOPE, d.node_id) is None, f"(d) {d}: has a task"
            if isinstance(d, s.StartNode):
                assert self.ready(d.node_id), f"(b) {d}: edges {self.states(d.node_id)}"
                if self.plan.root.nodes[d.node_id].type not in (START, END):
                    starts += 1
            elif isinstance(d, s.SkipNode):
                assert self.doomed(d.node_id), f"(c) {d}: edges {self.states(d.node_id)}"
            elif isinstance(d, s.CompleteInstance):
                assert not self.unstarted(), f"completed with {self.unstarted()} never decided"
                assert not self.inst.active_tasks(), "completed with tasks still running"
            elif isinstance(d, s.FailInstance):
                assert d.node_id == self.failed_node, d
            else:
                raise AssertionError(f"a flat graph needs no {d}")
        if self.limit is not None:
            assert self.running_workers() + starts <= self.limit, f"(e) {decisions}"

    def check_quiet(self) -> None:
        """Nothing was decided: then nothing could have been (skips and starts are eager)."""
        free = self.limit is None or self.running_workers() < self.limit
        for node_id in self.unstarted():
            assert not self.doomed(node_id), f"(c) {node_id} should have been skipped"
            assert not (free and self.ready(node_id)), f"(b) {node_id} should have started"
        assert self.inst.active_tasks(), "(a) running, nothing active, nothing decided: stuck"

    def apply(self, d: s.Decision) -> None:
        if isinstance(d, s.StartNode):
            node = self.plan.root.nodes[d.node_id]
            task_id = self._new_id()
            self._record(
                ev.TaskScheduled(
                    task_id=task_id,
                    scope=d.scope,
                    node_id=node.id,
                    node_type=node.type,
                    attempt=1,
                    available_at=self._now,
                )
            )
            if NODE_TYPES[node.type].execution is Execution.INLINE:
                self._record(
                    ev.TaskCompleted(task_id=task_id, attempt=1, output=None, ports=(DEFAULT_PORT,))
                )
        elif isinstance(d, s.SkipNode):
            node = self.plan.root.nodes[d.node_id]
            self._record(
                ev.TaskSkipped(
                    task_id=self._new_id(), scope=d.scope, node_id=node.id, node_type=node.type
                )
            )
        elif isinstance(d, s.CompleteInstance):
            self._record(ev.InstanceCompleted(outputs={}))
        elif isinstance(d, s.FailInstance):  # as decide.fail_instance: cancel, then fail
            for task in self.inst.active_tasks():
                self._record(ev.TaskCancelled(task_id=task.id, reason="instance failed"))
            self._record(ev.InstanceFailed(error=d.error, node_id=d.node_id))
        else:
            raise AssertionError(f"a flat graph needs no {d}")

    def finish(self, task: Task, port: str | None, *, lease: bool) -> None:
        """The worker's report: completed on ``port``, or (None) failed without a handler."""
        if lease:
            self._record(
                ev.TaskLeased(
                    task_id=task.id,
                    leased_to="worker-1",
                    lease_token=self._new_id(),
                    lease_expires_at=self._now + 30,
                )
            )
        if port is None:
            self.failed_node = task.node_id
            self._record(ev.TaskFailed(task_id=task.id, attempt=1, error="boom", handled=False))
        else:
            output: JSON = {"node": task.node_id, "port": port}
            self._record(ev.TaskCompleted(task_id=task.id, attempt=1, output=output, ports=(port,)))


def run(sim: Sim, data: st.DataObject) -> int:
    """Drive the instance to its end; the number of task reports it took."""
    workers = len(sim.definition.graph.nodes)
    for step in range(workers + 1):
        sim.settle()
        if not sim.running():
            return step
        active = sim.inst.active_tasks()
        task = active[data.draw(st.integers(0, len(active) - 1), label="finishes")]
        fails = data.draw(st.integers(0, 9), label="fails") == 9  # shrinks towards success
        port = None if fails else data.draw(st.sampled_from(PORTS[task.node_type]), label="port")
        sim.finish(task, port, lease=data.draw(st.booleans(), label="leased first"))
    raise AssertionError(f"(a) still {sim.inst.status} after {workers} task reports")


limits = st.none() | st.integers(1, 3)


@settings(max_examples=200, deadline=None)
@given(definitions(), limits, st.data())
def test_every_run_ends_and_obeys_the_join_skip_and_concurrency_rules(
    definition: Definition, limit: int | None, data: st.DataObject
) -> None:
    sim = Sim(definition, limit)
    assert {k: list(v) for k, v in sim.plan.root.incoming.items()} == sim.incoming
    run(sim, data)
    inst = sim.inst

    # (a) a terminal status, the one the reports call for, and nothing left to decide
    expected = InstanceStatus.COMPLETED if sim.failed_node is None else InstanceStatus.FAILED
    assert inst.status is expected
    assert not inst.active_tasks()
    assert s.schedule(sim.plan, inst, limit) == []
    # (d) one task per node
    per_node = Counter(t.node_id for t in inst.tasks.values())
    assert all(n == 1 for n in per_node.values()), per_node
    assert len(inst.by_key) == len(inst.tasks)
    # (c) skipped only when every incoming edge resolved untaken ...
    for task in inst.tasks.values():
        if task.status is TaskStatus.SKIPPED:
            assert sim.doomed(task.node_id), task.node_id
    if inst.status is InstanceStatus.COMPLETED:
        # ... and, in a completed run, every node so resolved was skipped; the others ran
        assert set(per_node) == set(sim.plan.root.nodes)
        for node_id in sim.plan.root.nodes:
            final = inst.task_at(ROOT_SCOPE, node_id)
            assert final is not None
            skipped = final.status is TaskStatus.SKIPPED
            assert skipped == sim.doomed(node_id), (node_id, sim.states(node_id))
            assert skipped or final.status is TaskStatus.COMPLETED
        assert inst.outputs == {}
    else:
        assert sim.failed_node is not None
        assert inst.error is not None
        assert repr(sim.failed_node) in inst.error


@settings(max_examples=200, deadline=None)
@given(definitions(), st.data())
def test_a_straight_run_completes_with_every_node_decided_once(
    definition: Definition, data: st.DataObject
) -> None:
    """Without failures and without a limit, every node ends completed or skipped."""
    sim = Sim(definition, None)
    for _ in range(len(definition.graph.nodes) + 1):
        sim.settle()
        if not sim.running():
            break
        for task in sim.inst.active_tasks():  # a whole wave finishes before the next pass
            sim.finish(task, data.draw(st.sampled_from(PORTS[task.node_type])), lease=False)
    assert sim.inst.status is InstanceStatus.COMPLETED
    statuses = {t.status for t in sim.inst.tasks.values()}
    assert statuses <= {TaskStatus.COMPLETED, TaskStatus.SKIPPED}
    assert len(sim.inst.tasks) == len(sim.plan.root.nodes)


def _document(definition: Definition) -> JSONObject:
    nodes: list[JSON] = [
        {"id": n.id, "type": n.type, "config": n.config, "join": n.join.value}
        for n in definition.graph.nodes
    ]
    edges: list[JSON] = [
        {"from": e.source if e.port == DEFAULT_PORT else f"{e.source}.{e.port}", "to": e.target}
        for e in definition.graph.edges
    ]
    return {"schema": "cadenza/v1", "id": definition.id, "nodes": nodes, "edges": edges}


@settings(max_examples=50, deadline=None)
@given(definitions())
def test_generated_graphs_are_valid_definitions(definition: Definition) -> None:
    """The generator stays inside the language: validation accepts each graph unchanged."""
    parsed = parse_definition(_document(definition), RealChecks())
    assert parsed.graph == definition.graph
