"""``condition``: the first branch whose expression holds chooses the port, else the default."""

from __future__ import annotations

from cadenza.application.ports import NodeCall, NodeFailure, NodeResult, TemplateError, Templates


class ConditionExecutor:
    def __init__(self, templates: Templates) -> None:
        self._templates = templates

    async def execute(self, call: NodeCall) -> NodeResult:
        cfg = call.node.config
        branches = cfg.get("branches")
        for index, branch in enumerate(branches if isinstance(branches, list) else []):
            if not isinstance(branch, dict):
                continue
            try:
                held = await self._templates.evaluate(str(branch.get("when")), call.context)
            except TemplateError as exc:
                raise NodeFailure(
                    f"condition {call.node.id!r} branch {index}: {exc}", retryable=False
                ) from exc
            if held:
                port = str(branch.get("port"))
                return NodeResult({"port": port, "branch": index}, ports=(port,))
        default = str(cfg.get("default"))
        return NodeResult({"port": default, "branch": None}, ports=(default,))
