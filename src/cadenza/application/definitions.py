"""Parse, validate, store and compile process definitions; plans are cached per version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cadenza.application.ports import Clock, Store, StoredDefinition, Templates
from cadenza.domain.definition import Definition
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.plan import Plan, compile_plan
from cadenza.domain.validation import parse_definition


class SchemaChecker(Protocol):
    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        """Problems of ``value`` against a JSON Schema as (relative path, reason)."""
        ...


@dataclass(frozen=True)
class _Checks:
    templates: Templates
    checker: SchemaChecker

    def template(self, text: str) -> str | None:
        return self.templates.check_template(text)

    def expression(self, text: str) -> str | None:
        return self.templates.check_expression(text)

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        return self.checker.schema(schema, value)


class InputsInvalid(ValueError):
    def __init__(self, process_id: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"inputs{p or ''}: {m}" for p, m in problems)
        super().__init__(f"inputs do not match the input schema of {process_id!r}: {lines}")


class VarsInvalid(InputsInvalid):
    """The definition's ``vars`` failed to render with these inputs (a template error, or a
    template over its time, step or size budget): the start is refused, nothing is stored."""

    def __init__(self, process_id: str, reason: str) -> None:
        super().__init__(process_id, [("", f"vars failed to render: {reason}")])
        self.args = (f"vars of {process_id!r} failed to render: {reason}",)


class Definitions:
    """The definition catalog used by the engine and the interfaces."""

    def __init__(
        self, store: Store, templates: Templates, checker: SchemaChecker, clock: Clock
    ) -> None:
        self._store = store
        self._checks = _Checks(templates, checker)
        self._checker = checker
        self._clock = clock
        self._plans: dict[tuple[str, int], Plan] = {}

    def parse(self, document: Mapping[str, object]) -> Definition:
        """Validate a document; raises DefinitionInvalid listing every problem."""
        return parse_definition(document, self._checks)

    async def publish(self, document: Mapping[str, object]) -> StoredDefinition:
        """Store a validated document as a published version (same content: same version)."""
        definition = self.parse(document)
        stored = StoredDefinition(
            process_id=definition.id,
            version=0,
            content_hash=definition.content_hash,
            status="published",
            document=definition.document,
            created_at=self._clock.now(),
        )
        return await self._store.put_definition(stored)

    def plan_for(self, stored: StoredDefinition) -> Plan:
        key = (stored.process_id, stored.version)
        plan = self._plans.get(key)
        if plan is None:
            plan = compile_plan(self.parse(stored.document))
            self._plans[key] = plan
        return plan

    async def plan(
        self, process_id: str, version: int | None = None
    ) -> tuple[StoredDefinition, Plan]:
        stored = await self._store.get_definition(process_id, version)
        if stored is None:
            which = "latest published version" if version is None else f"version {version}"
            raise NotFound(f"process {process_id!r}: no {which}")
        return stored, self.plan_for(stored)

    def input_problems(self, definition: Definition, inputs: JSON) -> list[tuple[str, str]]:
        if not definition.inputs:
            return [] if isinstance(inputs, dict) else [("", "inputs must be an object")]
        return self._checker.schema(definition.inputs, inputs)

    def check_inputs(self, definition: Definition, inputs: JSON) -> None:
        problems = self.input_problems(definition, inputs)
        if problems:
            raise InputsInvalid(definition.id, problems)
