"""The pure node kinds: computed from the template context alone, with no side effect.

The engine runs a pure node inside the decision step that reached it, so a chain of them is
journaled step by step (each with its own events and output) and committed once. It does so
only when every template of the node renders on the caller's thread (``Templates.
renders_inline``: no loops, no calls, a few strings), so a decision step never waits on a
render thread; otherwise the node is scheduled to a worker like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from cadenza.application.nodes.condition import branch_expressions, condition
from cadenza.application.nodes.transform import transform
from cadenza.application.ports import Templates
from cadenza.application.ports_nodes import NodeResult
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON

PureNode = Callable[[Templates, Node, Mapping[str, object]], Awaitable[NodeResult]]

PURE_NODES: Mapping[str, PureNode] = {"transform": transform, "condition": condition}

# per pure kind, the templates it renders: (a template value, expressions it evaluates)
_TEMPLATES_OF: Mapping[str, Callable[[Node], tuple[JSON, Sequence[str]]]] = {
    "transform": lambda node: (node.config.get("output"), ()),
    "condition": lambda node: (None, branch_expressions(node)),
}


def runs_inline(templates: Templates, node: Node) -> bool:
    """True when ``node`` is pure and its templates render without a thread."""
    templates_of = _TEMPLATES_OF.get(node.type)
    if templates_of is None:
        return False
    value, expressions = templates_of(node)
    return templates.renders_inline(value, expressions)
