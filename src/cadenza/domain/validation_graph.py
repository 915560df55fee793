"""Graph checks of ``cadenza/v1`` documents: edges, ports, start/end, cycles, reachability."""

from __future__ import annotations

from dataclasses import dataclass

from cadenza.domain.definition import ERROR_PORT, Edge, Graph, OnError
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.validation_context import Context, check_fields, kind
from cadenza.domain.validation_nodes import NodeDraft, parse_node


@dataclass(frozen=True)
class _Link:
    """An edge whose endpoints exist; ``valid`` is False when its port or direction is wrong."""

    path: str
    edge: Edge
    valid: bool


def parse_body(value: JSON, path: str, ctx: Context) -> Graph | None:
    """Check a map/loop ``config.body`` ({nodes, edges}) as a graph of its own."""
    if not isinstance(value, dict):
        ctx.add(path, f"expected a body mapping {{nodes, edges}}, got {kind(value)}")
        return None
    check_fields(value, ("nodes", "edges"), path, ctx)
    return parse_graph(value, path, ctx)


def parse_graph(container: JSONObject, path: str, ctx: Context) -> Graph:
    """The nodes and edges of one graph (the process, or a map/loop body), checked as a whole."""
    drafts = _nodes(container, path, ctx)
    links = _links(container, path, drafts, ctx)
    _check_error_branches(drafts, links, ctx)
    _check_single("start", drafts, ctx)
    _check_single("end", drafts, ctx)
    following: dict[str, list[_Link]] = {node_id: [] for node_id in drafts}
    for link in links:
        following[link.edge.source].append(link)
    _check_cycles(following, ctx)
    _check_reachable(drafts, following, ctx)
    return Graph(
        nodes=tuple(d.node for d in drafts.values()),
        edges=tuple(link.edge for link in links if link.valid),
    )


def _nodes(container: JSONObject, path: str, ctx: Context) -> dict[str, NodeDraft]:
    if "nodes" not in container:
        ctx.add(path, "missing required field 'nodes' (a non-empty list of nodes)")
        return {}
    raw = container["nodes"]
    if not isinstance(raw, list) or not raw:
        ctx.add(f"{path}.nodes", f"expected a non-empty list of nodes, got {kind(raw)}")
        return {}
    drafts = (parse_node(item, f"{path}.nodes[{i}]", ctx) for i, item in enumerate(raw))
    return {d.node.id: d for d in drafts if d is not None}


def _links(
    container: JSONObject, path: str, drafts: dict[str, NodeDraft], ctx: Context
) -> list[_Link]:
    raw = container.get("edges", [])
    if not isinstance(raw, list):
        ctx.add(f"{path}.edges", f"expected a list of edges, got {kind(raw)}")
        return []
    links = (_link(item, f"{path}.edges[{i}]", drafts, ctx) for i, item in enumerate(raw))
    return [link for link in links if link is not None]


def _endpoint(ref: str, path: str, drafts: dict[str, NodeDraft], ctx: Context) -> NodeDraft | None:
    draft = drafts.get(ref)
    if draft is None:
        elsewhere = ctx.node_paths.get(ref)
        hint = (
            f" (it is defined at {elsewhere}; edges cannot cross a map/loop body boundary)"
            if elsewhere
            else f"; nodes here: {', '.join(drafts) or 'none'}"
        )
        ctx.add(path, f"no node '{ref}' in this graph{hint}")
    return draft


def _ref(edge: JSONObject, key: str, path: str, ctx: Context) -> str | None:
    value = edge.get(key)
    if isinstance(value, str) and value:
        return value
    ctx.add(
        f"{path}.{key}",
        f"expected a node id{' or node.port' if key == 'from' else ''}, got {kind(value)}",
    )
    return None


def _link(item: JSON, path: str, drafts: dict[str, NodeDraft], ctx: Context) -> _Link | None:
    if not isinstance(item, dict):
        ctx.add(path, f"expected an edge mapping {{from, to}}, got {kind(item)}")
        return None
    check_fields(item, ("from", "to"), path, ctx)
    source_ref, target_ref = _ref(item, "from", path, ctx), _ref(item, "to", path, ctx)
    if source_ref is None or target_ref is None:
        return None
    source_id, dot, port = source_ref.partition(".")
    source = _endpoint(source_id, f"{path}.from", drafts, ctx)
    if "." in target_ref:
        ctx.add(
            f"{path}.to",
            f"an edge target names a node, not a port: use '{target_ref.split('.')[0]}'",
        )
        return None
    target = _endpoint(target_ref, f"{path}.to", drafts, ctx)
    if source is None or target is None:
        return None
    if source_id == target_ref:
        ctx.add(
            path, f"self-edge on '{source_id}': a node cannot feed itself; repeat work with a loop"
        )
        return None
    # Kept out of the graph checks altogether: they would only add cycle reports.
    if source.node.type == "end" or target.node.type == "start":
        if source.node.type == "end":
            ctx.add(f"{path}.from", f"end node '{source_id}' cannot have outgoing edges")
        if target.node.type == "start":
            ctx.add(f"{path}.to", f"start node '{target_ref}' cannot have incoming edges")
        return None
    edge = Edge(source_id, port if dot else source.default_port, target_ref)
    return _Link(path, edge, _check_port(source, edge.port, f"{path}.from", ctx))


def _check_port(source: NodeDraft, port: str, path: str, ctx: Context) -> bool:
    node = source.node
    if source.ports is None:  # the node's type or config is already reported
        return True
    if port == ERROR_PORT and port in source.ports and node.on_error is not OnError.BRANCH:
        ctx.add(path, f"port 'error' of '{node.id}' needs on_error: branch on that node")
        return False
    if port not in source.ports:
        ports = ", ".join(sorted(source.ports))
        ctx.add(path, f"node '{node.id}' ({node.type}) has no port '{port}'; its ports: {ports}")
        return False
    return True


def _check_error_branches(drafts: dict[str, NodeDraft], links: list[_Link], ctx: Context) -> None:
    sources = {link.edge.source for link in links if link.edge.port == ERROR_PORT}
    for draft in drafts.values():
        if draft.node.on_error is OnError.BRANCH and draft.node.id not in sources:
            ctx.add(
                f"{draft.path}.on_error",
                f"on_error: branch needs at least one edge from '{draft.node.id}.{ERROR_PORT}'",
            )


def _check_single(node_type: str, drafts: dict[str, NodeDraft], ctx: Context) -> None:
    found = [d for d in drafts.values() if d.node.type == node_type]
    for extra in found[1:]:
        ctx.add(
            f"{extra.path}.type",
            f"more than one {node_type} node: '{found[0].node.id}' ({found[0].path}) is already "
            f"the {node_type}; a graph has at most one",
        )


def _check_cycles(following: dict[str, list[_Link]], ctx: Context) -> None:
    """Report each edge that closes a cycle, found by an iterative depth-first search.

    Linear in nodes and edges: the trail is mirrored in a set (a 4,000-node chain made the
    list lookups cost ~n^2/2 comparisons)."""
    done: set[str] = set()
    for root in following:
        if root in done:
            continue
        trail, on_trail, stack = [root], {root}, [iter(following[root])]
        while stack:
            link = next(stack[-1], None)
            target = link.edge.target if link else ""
            if link is None:
                on_trail.discard(node := trail.pop())
                done.add(node)
                stack.pop()
            elif target in done:
                continue
            elif target in on_trail:
                cycle = " -> ".join([*trail[trail.index(target) :], target])
                ctx.add(link.path, f"cycle outside a loop: {cycle}; repeat work with a loop")
            else:
                trail.append(target)
                on_trail.add(target)
                stack.append(iter(following[target]))


def _check_reachable(
    drafts: dict[str, NodeDraft], following: dict[str, list[_Link]], ctx: Context
) -> None:
    start = next((d.node.id for d in drafts.values() if d.node.type == "start"), None)
    if start is None:  # the implicit start feeds every node without incoming edges
        return
    seen, queue = {start}, [start]
    while queue:
        for link in following[queue.pop()]:
            if link.edge.target not in seen:
                seen.add(link.edge.target)
                queue.append(link.edge.target)
    for draft in drafts.values():
        if draft.node.id not in seen and draft.node.type != "start":
            ctx.add(draft.path, f"node '{draft.node.id}' is unreachable from start node '{start}'")
