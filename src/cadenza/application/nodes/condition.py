"""``condition``: the first branch whose expression holds chooses the port, else the default."""

from __future__ import annotations

from collections.abc import Mapping

from cadenza.application.ports import TemplateError, Templates
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.domain.definition import Node


def branch_expressions(node: Node) -> list[str]:
    branches = node.config.get("branches")
    return [
        str(b.get("when"))
        for b in (branches if isinstance(branches, list) else [])
        if isinstance(b, dict)
    ]


async def condition(templates: Templates, node: Node, context: Mapping[str, object]) -> NodeResult:
    """The port of the first branch whose ``when`` holds over ``context``, else the default."""
    cfg = node.config
    branches = cfg.get("branches")
    for index, branch in enumerate(branches if isinstance(branches, list) else []):
        if not isinstance(branch, dict):
            continue
        try:
            held = await templates.evaluate(str(branch.get("when")), context)
        except TemplateError as exc:
            raise NodeFailure(
                f"condition {node.id!r} branch {index}: {exc}", retryable=False
            ) from exc
        if held:
            port = str(branch.get("port"))
            return NodeResult({"port": port, "branch": index}, ports=(port,))
    default = str(cfg.get("default"))
    return NodeResult({"port": default, "branch": None}, ports=(default,))


class ConditionExecutor:
    """Runs a condition on a worker (when an expression needs a render thread)."""

    def __init__(self, templates: Templates) -> None:
        self._templates = templates

    async def execute(self, call: NodeCall) -> NodeResult:
        return await condition(self._templates, call.node, call.context)
