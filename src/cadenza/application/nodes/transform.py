"""``transform``: render a JSON template into the node output."""

from __future__ import annotations

from collections.abc import Mapping

from cadenza.application.ports import TemplateError, Templates
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.domain.definition import Node


async def transform(templates: Templates, node: Node, context: Mapping[str, object]) -> NodeResult:
    """The node's output: its ``output`` template rendered over ``context``."""
    try:
        return NodeResult(await templates.render(node.config.get("output"), context))
    except TemplateError as exc:
        raise NodeFailure(f"transform {node.id!r}: {exc}", retryable=False) from exc


class TransformExecutor:
    """Runs a transform on a worker (when its template needs a render thread)."""

    def __init__(self, templates: Templates) -> None:
        self._templates = templates

    async def execute(self, call: NodeCall) -> NodeResult:
        return await transform(self._templates, call.node, call.context)
