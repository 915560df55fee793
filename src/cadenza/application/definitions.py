"""Parse, validate, store and compile process definitions; plans are cached per version."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from cadenza.application.definition_cache import DefinitionCache
from cadenza.application.ports import Clock, Store, StoredDefinition, Templates
from cadenza.application.subprocesses import refuse_cycles
from cadenza.domain.definition import Definition
from cadenza.domain.errors import NotFound
from cadenza.domain.json import JSON, JSONObject
from cadenza.domain.limits import Limits, clip, json_size_bound, value_problem
from cadenza.domain.plan import Plan, compile_plan
from cadenza.domain.validation import parse_definition

INLINE_CHECK_BYTES = 2048  # inputs this small are checked on the event loop


class SchemaChecker(Protocol):
    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        """Problems of ``value`` against a JSON Schema as (relative path, reason)."""
        ...

    def schema_problems(self, schema: JSONObject) -> list[tuple[str, str]]:
        """Problems of ``schema`` itself as a user's JSON Schema (relative path, reason)."""
        ...


@dataclass(frozen=True)
class _Checks:
    templates: Templates
    checker: SchemaChecker
    new: bool = True  # False: a stored document, whose schemas are checked when applied

    def template(self, text: str) -> str | None:
        return self.templates.check_template(text)

    def expression(self, text: str) -> str | None:
        return self.templates.check_expression(text)

    def schema(self, schema: JSONObject, value: JSON) -> list[tuple[str, str]]:
        return self.checker.schema(schema, value)

    def schema_problems(self, schema: JSONObject) -> list[tuple[str, str]]:
        return self.checker.schema_problems(schema) if self.new else []


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
        self,
        store: Store,
        templates: Templates,
        checker: SchemaChecker,
        clock: Clock,
        limits: Limits | None = None,
        cache: DefinitionCache | None = None,
    ) -> None:
        self.limits = limits or Limits()
        # versions and latest-version pointers (shared through Redis and invalidated over
        # the bus when the composition root gives a cache that does)
        self.cache = cache or DefinitionCache(None, clock)
        self._store = store
        self._checks = _Checks(templates, checker)
        # Stored versions are read back with the limits and schema checks of their day, so
        # that instances of a version stored before a check was added still run; a schema
        # that fails the checks is refused when it is applied (start, model output).
        self._stored_checks = _Checks(templates, checker, new=False)
        self._checker = checker
        self._clock = clock
        self._plans: dict[tuple[str, int], Plan] = {}
        # One validation thread at a time: the event loop shares the GIL with it in 5 ms
        # slices; with several such threads it would get a fraction of one slice in several.
        self._one_at_a_time = asyncio.Semaphore(1)

    def parse(self, document: Mapping[str, object]) -> Definition:
        """Validate a document; raises DefinitionInvalid listing every problem."""
        return parse_definition(document, self._checks, self.limits)

    async def validate(self, document: Mapping[str, object]) -> Definition:
        """``parse`` in a worker thread: validation costs up to ~100 ms for the largest
        definition allowed, which must not stall the event loop (and every other request)."""
        async with self._one_at_a_time:
            return await asyncio.to_thread(self.parse, document)

    async def publish(self, document: Mapping[str, object]) -> StoredDefinition:
        """Store a validated document as a published version (same content: same version)."""
        definition = await self.validate(document)
        await refuse_cycles(definition, None, self._published)
        stored = StoredDefinition(
            process_id=definition.id,
            version=0,
            content_hash=definition.content_hash,
            status="published",
            document=definition.document,
            created_at=self._clock.now(),
        )
        stored = await self._store.put_definition(stored)
        await self.cache.changed(stored.workspace_id, stored.process_id)
        return stored

    def plan_for(self, stored: StoredDefinition) -> Plan:
        key = (stored.process_id, stored.version)
        plan = self._plans.get(key)
        if plan is None:
            stored_limits = replace(self.limits, max_nodes=max(self.limits.max_nodes, 10**6))
            plan = compile_plan(
                parse_definition(stored.document, self._stored_checks, stored_limits)
            )
            self._plans[key] = plan
        return plan

    async def plan(
        self, process_id: str, version: int | None = None, workspace: str = "default"
    ) -> tuple[StoredDefinition, Plan]:
        stored = await self._stored(process_id, version, workspace)
        if stored is None:
            which = "latest published version" if version is None else f"version {version}"
            raise NotFound(f"process {process_id!r}: no {which}")
        return stored, self.plan_for(stored)

    async def _published(self, process_id: str, version: int | None) -> Definition | None:
        stored = await self._stored(process_id, version, "default")
        return None if stored is None else self.plan_for(stored).definition

    async def _stored(
        self, process_id: str, version: int | None, workspace: str
    ) -> StoredDefinition | None:
        def load() -> Awaitable[StoredDefinition | None]:
            return self._store.get_definition(process_id, version)

        if version is None:
            return await self.cache.latest(workspace, process_id, load)
        return await self.cache.version(workspace, process_id, version, load)

    def value_problem(self, value: JSON, what: str) -> tuple[str, str] | None:
        """(path, reason) when ``value`` is nested too deep or too large to be stored."""
        return value_problem(value, self.limits, what)

    def unstorable(self, value: JSON, what: str) -> str | None:
        """Why a result cannot be stored (too deep or too large for every reader), or None:
        the error its task fails with."""
        problem = self.value_problem(value, what)
        if problem is None:
            return None
        path, reason = problem
        where = f" (at {clip(path.lstrip('.'), 200)})" if path else ""
        return f"{reason}{where}; it was not stored"

    def input_problems(self, definition: Definition, inputs: JSON) -> list[tuple[str, str]]:
        if (problem := self.value_problem(inputs, "inputs")) is not None:
            return [problem]
        if not definition.inputs:
            return [] if isinstance(inputs, dict) else [("", "inputs must be an object")]
        return self._checker.schema(definition.inputs, inputs)

    async def check_inputs_in_thread(self, definition: Definition, inputs: JSON) -> None:
        """``check_inputs`` in a worker thread: a 1 MiB input costs ~1 s of schema checks.
        Inputs of at most ``INLINE_CHECK_BYTES`` as JSON are checked here, on the event loop
        (microseconds, a few ms at worst), without queueing behind other requests' checks."""
        if json_size_bound(inputs) <= INLINE_CHECK_BYTES:
            self.check_inputs(definition, inputs)
            return
        async with self._one_at_a_time:
            problems = await asyncio.to_thread(self.input_problems, definition, inputs)
        if problems:
            raise InputsInvalid(definition.id, problems)

    def check_inputs(self, definition: Definition, inputs: JSON) -> None:
        problems = self.input_problems(definition, inputs)
        if problems:
            raise InputsInvalid(definition.id, problems)
