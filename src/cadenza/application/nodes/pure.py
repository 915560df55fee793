"""The pure node kinds: computed from the template context alone, with no side effect.

The engine runs a pure node inside the decision step that reached it, so a chain of them is
journaled step by step (each with its own events and output) and committed once. It does so
only when every template of the node renders on the caller's thread (``Templates.
renders_inline``: no loops, no calls, a few strings), so a decision step never waits on a
render thread; otherwise the node is scheduled to a worker like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from cadenza.application.nodes.condition import branch_expressions, condition
from cadenza.application.nodes.transform import transform
from cadenza.application.ports import NodeResult, Templates
from cadenza.domain.definition import Node

PureNode = Callable[[Templates, Node, Mapping[str, object]], Awaitable[NodeResult]]

PURE_NODES: Mapping[str, PureNode] = {"transform": transform, "condition": condition}


def runs_inline(templates: Templates, node: Node) -> bool:
    """True when ``node`` is pure and its templates render without a thread."""
    if node.type not in PURE_NODES:
        return False
    if node.type == "condition":
        return templates.renders_inline(None, branch_expressions(node))
    return templates.renders_inline(node.config.get("output"), ())
