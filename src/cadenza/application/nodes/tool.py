"""``tool``: one MCP tool call; annotations decide whether a failure may be retried."""

from __future__ import annotations

from cadenza.application.config_apply import gateway_for
from cadenza.application.ports import TemplateError, Templates
from cadenza.application.ports_ai import ToolError, ToolGateway, ToolInfo
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult


def retry_allowed(info: ToolInfo | None) -> bool:
    """Read-only or idempotent tools may run again; destructive or unknown ones never blindly."""
    if info is None:
        return False
    hints = info.annotations
    if hints.get("readOnlyHint") is True or hints.get("idempotentHint") is True:
        return True
    return hints.get("destructiveHint") is False


def is_destructive(info: ToolInfo | None) -> bool:
    """MCP's default: a tool may destroy unless it says it is read-only or not destructive."""
    if info is None:
        return True
    hints = info.annotations
    return hints.get("readOnlyHint") is not True and hints.get("destructiveHint") is not False


def approval_problem(call: NodeCall, info: ToolInfo | None) -> str | None:
    """With approvals required, a destructive tool runs only after the approval node named by
    ``approved_by`` approved it in this instance."""
    if not is_destructive(info):
        return None
    approver = call.node.config.get("approved_by")
    name = f"{info.server}/{info.name}" if info else "this tool"
    if not isinstance(approver, str):
        return (
            f"{name} is destructive and approvals are required: add an approval node before "
            "this node and name it in config.approved_by"
        )
    nodes = call.context.get("nodes")
    entry = nodes.get(approver) if isinstance(nodes, dict) else None
    output = entry.get("output") if isinstance(entry, dict) else None
    decision = output.get("decision") if isinstance(output, dict) else None
    if decision != "approved":
        return f"{name} is destructive: approval node {approver!r} did not approve it ({decision})"
    return None


async def find_tool(gateway: ToolGateway, server: str, name: str) -> ToolInfo | None:
    try:
        tools = await gateway.list_tools(server)
    except ToolError:
        return None
    return next((t for t in tools if t.name == name), None)


class ToolExecutor:
    def __init__(
        self, gateway: ToolGateway, templates: Templates, *, approve_destructive: bool = False
    ) -> None:
        self._gateway = gateway
        self._templates = templates
        self._approve_destructive = approve_destructive

    async def execute(self, call: NodeCall) -> NodeResult:
        cfg = call.node.config
        server, name = str(cfg["server"]), str(cfg["tool"])
        try:
            arguments = await self._templates.render(cfg.get("arguments", {}), call.context)
        except TemplateError as exc:
            raise NodeFailure(f"tool {call.node.id!r} arguments: {exc}", retryable=False) from exc
        if not isinstance(arguments, dict):
            raise NodeFailure("tool arguments must render to an object", retryable=False)
        gateway = gateway_for(self._gateway, call.workspace_id)
        try:
            tools = await gateway.list_tools(server)
        except ToolError as exc:
            # The catalog could not be read (server or MCP proxy down): nothing ran, so a
            # retry is safe whatever the tool does; an unknown server stays a final failure.
            if exc.retryable:
                raise NodeFailure(f"{server}/{name}: {exc}", retryable=True) from exc
            tools = []
        info = next((t for t in tools if t.name == name), None)
        if self._approve_destructive:
            problem = approval_problem(call, info)
            if problem:
                raise NodeFailure(problem, retryable=False)
        retryable = retry_allowed(info)
        try:
            result = await gateway.call_tool(
                server,
                name,
                arguments,
                idempotency_key=call.idempotency_key,
                timeout_s=call.node.timeout_s or 30.0,
            )
        except ToolError as exc:
            raise NodeFailure(
                f"{server}/{name}: {exc}", retryable=exc.retryable and retryable
            ) from exc
        if result.is_error:
            raise NodeFailure(
                f"{server}/{name} returned an error: {result.content}", retryable=retryable
            )
        return NodeResult({"content": result.content, "structured": result.structured})
