"""The definition checks ``cadenza validate`` and the engine use: real Jinja2, real JSON Schema."""

from __future__ import annotations

from cadenza.domain.json import JSON, JSONObject
from cadenza.infrastructure.schema_check import JsonSchemaChecks
from cadenza.infrastructure.templating import JinjaTemplates


class RealChecks:
    """``domain.validation.Checks`` over the real adapters, for tests that parse definitions."""

    def __init__(self) -> None:
        self._templates = JinjaTemplates()
        self._schemas = JsonSchemaChecks()

    def template(self, text: str) -> str | None:
        return self._templates.check_template(text)

    def expression(self, text: str) -> str | None:
        return self._templates.check_expression(text)

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        return self._schemas.schema(schema, value)

    def schema_problems(self, schema: JSONObject) -> list[tuple[str, str]]:
        return self._schemas.schema_problems(schema)
