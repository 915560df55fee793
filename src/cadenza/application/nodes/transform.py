"""``transform``: render a JSON template into the node output."""

from __future__ import annotations

from cadenza.application.ports import NodeCall, NodeFailure, NodeResult, TemplateError, Templates


class TransformExecutor:
    def __init__(self, templates: Templates) -> None:
        self._templates = templates

    async def execute(self, call: NodeCall) -> NodeResult:
        try:
            return NodeResult(
                await self._templates.render(call.node.config.get("output"), call.context)
            )
        except TemplateError as exc:
            raise NodeFailure(f"transform {call.node.id!r}: {exc}", retryable=False) from exc
