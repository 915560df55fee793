"""``llm``: one model call with a prompt template and optional structured output."""

from __future__ import annotations

import json

from cadenza.application.definitions import SchemaChecker
from cadenza.application.ports import TemplateError, Templates
from cadenza.application.ports_ai import ChatMessage, ChatRequest, ProviderError
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.application.providers import Providers
from cadenza.domain.json import JSON, JSONObject


async def render_text(templates: Templates, value: JSON, call: NodeCall, field: str) -> str:
    try:
        rendered = await templates.render(value, call.context)
    except TemplateError as exc:
        raise NodeFailure(
            f"{call.node.type} {call.node.id!r} {field}: {exc}", retryable=False
        ) from exc
    return rendered if isinstance(rendered, str) else json.dumps(rendered, ensure_ascii=False)


def structured(text: str, schema: JSONObject, checker: SchemaChecker) -> JSON:
    """Parse and validate a structured answer; a mismatch is retryable (the model may fix it)."""
    try:
        value: JSON = json.loads(text)
    except ValueError as exc:
        raise NodeFailure(
            f"model output is not JSON ({exc}): {text[:200]!r}", retryable=True
        ) from exc
    problems = checker.schema(schema, value)
    if problems:
        where = "; ".join(f"output{p}: {m}" for p, m in problems[:5])
        raise NodeFailure(f"model output does not match output_schema: {where}", retryable=True)
    return value


def provider_failure(exc: ProviderError) -> NodeFailure:
    return NodeFailure(f"model call failed: {exc}", retryable=exc.retryable)


class LlmExecutor:
    def __init__(self, providers: Providers, templates: Templates, checker: SchemaChecker) -> None:
        self._providers = providers
        self._templates = templates
        self._checker = checker

    async def execute(self, call: NodeCall) -> NodeResult:
        cfg = call.node.config
        provider, model = self._providers.resolve(
            cfg.get("provider"), cfg.get("model"), call.workspace_id
        )
        messages = []
        if "system" in cfg:
            messages.append(
                ChatMessage(
                    "system", await render_text(self._templates, cfg["system"], call, "system")
                )
            )
        messages.append(
            ChatMessage("user", await render_text(self._templates, cfg["prompt"], call, "prompt"))
        )
        schema = cfg.get("output_schema")
        temperature, max_tokens = cfg.get("temperature"), cfg.get("max_tokens")
        request = ChatRequest(
            model=model,
            messages=tuple(messages),
            temperature=float(temperature) if isinstance(temperature, int | float) else None,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            response_schema=schema if isinstance(schema, dict) else None,
            idempotency_key=call.idempotency_key,
            timeout_s=call.node.timeout_s or 30.0,
        )
        sink = call.on_tokens if cfg.get("stream") is True else None
        try:
            response = await self._providers.chat(provider, request, call.workspace_id, sink)
        except ProviderError as exc:
            raise provider_failure(exc) from exc
        text = response.message.content or ""
        output: JSONObject = {
            "text": text,
            "model": response.model,
            "finish_reason": response.finish_reason,
        }
        if isinstance(schema, dict):
            output["json"] = structured(text, schema, self._checker)
        return NodeResult(output, usage=self._providers.usage(response, provider))
