"""Compile a validated definition into an execution plan: adjacency, order, implicit start/end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from cadenza.domain.definition import DEFAULT_PORT, Definition, Edge, Graph, Node
from cadenza.domain.nodetypes import NODE_TYPES, Execution
from cadenza.domain.timers import task_timer_kinds

ANY_OUTCOME = "*"  # internal port of implicit end edges: any outcome but skip


@dataclass(frozen=True)
class GraphPlan:
    nodes: Mapping[str, Node]
    incoming: Mapping[str, tuple[Edge, ...]]
    outgoing: Mapping[str, tuple[Edge, ...]]
    order: tuple[str, ...]
    start: str
    end: str
    bodies: Mapping[str, GraphPlan]
    leaves: tuple[str, ...]  # nodes feeding the end node: their outputs make the body result


@dataclass(frozen=True)
class Plan:
    definition: Definition
    root: GraphPlan

    @cached_property
    def arms_timers(self) -> bool:
        """Whether an instance of this plan can have timer rows: it has a timeout, or a
        control node (a ``wait``, an ``approval``, any with a ``timeout``) may arm one. The
        engine skips looking for timers to delete in the others (most: the hot path)."""
        if self.definition.settings.timeout_s:
            return True
        pending = [self.root]
        while pending:
            graph = pending.pop()
            pending.extend(graph.bodies.values())
            for node in graph.nodes.values():
                kind = NODE_TYPES.get(node.type)
                control = kind is not None and kind.execution is Execution.CONTROL
                if control and task_timer_kinds(node.type, node.timeout_s, control=True):
                    return True
        return False

    def graph_for(self, path: tuple[str, ...]) -> GraphPlan:
        """The plan of the body reached through owner node ids ``path`` (empty: the root)."""
        plan = self.root
        for owner in path:
            plan = plan.bodies[owner]
        return plan


def _fresh_id(wanted: str, taken: set[str]) -> str:
    candidate = wanted
    while candidate in taken:
        candidate = f"_{candidate}_"
    return candidate


def compile_graph(graph: Graph) -> GraphPlan:
    nodes = {n.id: n for n in graph.nodes}
    edges = list(graph.edges)
    starts = [n.id for n in graph.nodes if n.type == "start"]
    ends = [n.id for n in graph.nodes if n.type == "end"]
    if starts:
        start = starts[0]
    else:
        start = _fresh_id("start", set(nodes))
        has_incoming = {e.target for e in edges}
        roots = [n.id for n in graph.nodes if n.id not in has_incoming]
        nodes[start] = Node(id=start, type="start")
        edges = [Edge(start, DEFAULT_PORT, r) for r in roots] + edges
    if ends:
        end = ends[0]
    else:
        end = _fresh_id("end", set(nodes))
        has_outgoing = {e.source for e in edges}
        leaves = [nid for nid in nodes if nid not in has_outgoing]
        nodes[end] = Node(id=end, type="end")
        edges = edges + [Edge(leaf, ANY_OUTCOME, end) for leaf in leaves]
    incoming: dict[str, list[Edge]] = {nid: [] for nid in nodes}
    outgoing: dict[str, list[Edge]] = {nid: [] for nid in nodes}
    for e in edges:
        incoming[e.target].append(e)
        outgoing[e.source].append(e)
    order = _topological(nodes, outgoing, incoming)
    bodies = {n.id: compile_graph(n.body) for n in graph.nodes if n.body is not None}
    leaves_of_end = tuple(e.source for e in incoming[end])
    return GraphPlan(
        nodes=nodes,
        incoming={k: tuple(v) for k, v in incoming.items()},
        outgoing={k: tuple(v) for k, v in outgoing.items()},
        order=order,
        start=start,
        end=end,
        bodies=bodies,
        leaves=leaves_of_end,
    )


def _topological(
    nodes: Mapping[str, Node],
    outgoing: Mapping[str, list[Edge]],
    incoming: Mapping[str, list[Edge]],
) -> tuple[str, ...]:
    indegree = {nid: len({e.source for e in incoming[nid]}) for nid in nodes}
    ready = [nid for nid in nodes if indegree[nid] == 0]
    order: list[str] = []
    while ready:
        nid = ready.pop(0)
        order.append(nid)
        for target in dict.fromkeys(e.target for e in outgoing[nid]):
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    if len(order) != len(nodes):
        raise ValueError("graph has a cycle; validate definitions before compiling")
    return tuple(order)


def compile_plan(definition: Definition) -> Plan:
    return Plan(definition=definition, root=compile_graph(definition.graph))
