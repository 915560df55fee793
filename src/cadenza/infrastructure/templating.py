"""The ``Templates`` port on Jinja2's immutable sandbox, bounded in time, steps and size.

A render that can loop or call runs on a small thread pool owned by this adapter, so the event
loop keeps serving while it runs; a render of plain lookups (``{{ inputs.x }}``) runs inline,
where a thread hop would cost more than the render. Either way it runs under a ``Budget``
(``template_budget``) that the sandbox checks as it goes, and cancelling the awaiting task
(a node ``timeout``) sets the budget's cancel flag, so the thread stops at its next step.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator, KeysView, Mapping, Sequence, ValuesView
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

import jinja2
from jinja2 import Template, Undefined

from cadenza.application.ports import TemplateError
from cadenza.domain.json import JSON
from cadenza.infrastructure import template_budget as tb
from cadenza.infrastructure.template_budget import MAX_OUTPUT, Budget, refuse
from cadenza.infrastructure.template_compile import Compiled, Compiler
from cadenza.infrastructure.template_sandbox import sandbox

MAX_VALUES: Final = 1_000_000  # most values converted into one JSON result
MAX_INLINE_STRINGS: Final = 16  # a value with more templated strings than this goes to a thread

_PREVIEW: Final = 60
_T = TypeVar("_T")


@dataclass(frozen=True)
class TemplateLimits:
    """The budget of one render (settings ``template_time_ms``, ``template_max_steps``) and
    the number of threads that run renders (``template_threads``)."""

    time_ms: int = 200
    max_steps: int = 1_000_000
    threads: int = 4


def _to_json(value: object) -> JSON:
    """Convert a Jinja value to JSON: Undefined is None, sequences and iterators are lists,
    mappings are objects with string keys, anything else is its ``str``."""
    remaining = MAX_VALUES
    budget = tb.current()

    def convert(item: object) -> JSON:
        nonlocal remaining
        remaining -= 1
        if remaining < 0:  # aliasing can make a small structure expand enormously
            refuse(f"result has more than {MAX_VALUES} values")
        if budget is not None and remaining % 4096 == 0:
            budget.check()
        if item is None or isinstance(item, Undefined):
            return None
        if isinstance(item, bool | int | float):
            return item
        if isinstance(item, str):
            if len(item) > MAX_OUTPUT:
                refuse(f"result is longer than {MAX_OUTPUT} characters")
            return str(item)  # drops str subclasses such as Markup
        if isinstance(item, Mapping):
            return {str(key): convert(inner) for key, inner in item.items()}
        if isinstance(
            item, list | tuple | set | frozenset | range | Iterator | KeysView | ValuesView
        ):
            return [convert(inner) for inner in item]
        return str(item)

    return convert(value)


def _join_bounded(chunks: Iterator[str]) -> str:
    # Count while streaming, so an oversized output stops early instead of filling memory.
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            refuse(f"output is longer than {MAX_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)


def _reason(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.message} (line {exc.lineno})"
    if isinstance(exc, jinja2.TemplateError | TemplateError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _failure(kind: str, text: str, exc: Exception) -> TemplateError:
    preview = text if len(text) <= _PREVIEW else text[: _PREVIEW - 3] + "..."
    return TemplateError(f"{kind} {preview!r}: {_reason(exc)}")


class JinjaTemplates:
    """Sandboxed Jinja2 (``ImmutableSandboxedEnvironment``) implementing ``Templates``.

    Missing variables and attributes are lenient (``ChainableUndefined``): ``nodes.x.output``
    renders as "" in text and is None as a value. Dict keys win over dict methods
    (``inputs.items`` is the key). Extra filter: ``fromjson``. Dict keys of rendered values
    are not rendered. Every failure is raised as ``TemplateError("template '...': reason")``
    (``expression '...'`` for ``evaluate``).

    Each ``render``/``evaluate`` call has a budget (``TemplateLimits``): a time budget, a step
    budget (loop iterations, calls, filters, operators) and a cancel flag, checked while the
    template runs; sizes are checked before an operation allocates (``template_guards``,
    ``template_sandbox``): see docs/security.md for the list. Compiled templates are cached
    (``template_compile.CACHE_SIZE`` entries, least recently used evicted). ``close()``
    stops the thread pool.
    """

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self._limits = limits or TemplateLimits()
        self._env = sandbox()
        self._compiler = Compiler(self._env)
        self._pool = ThreadPoolExecutor(self._limits.threads, thread_name_prefix="template")
        self._lock = threading.Lock()
        self.running = 0  # renders running right now, inline or on a thread

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check_template(self, text: str) -> str | None:
        """None when ``text`` compiles as a template, else the reason with its line."""
        return self._check("template", text)

    def check_expression(self, text: str) -> str | None:
        """None when ``text`` compiles as a bare expression, else the reason with its line."""
        return self._check("expression", text)

    async def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        """Render every string in ``value``; exactly one ``{{ expr }}`` keeps its JSON type."""
        compiled = self._prepare(value)
        if not compiled:  # nothing to render: no budget, no thread, no copy of the context
            return _copy(value)  # never the caller's (often a definition's) own containers
        variables = dict(context)
        inline = len(compiled) <= MAX_INLINE_STRINGS and all(c.inline for c in compiled.values())
        job = functools.partial(self._render, value, variables, compiled)
        return await self._run(inline, job)

    async def evaluate(self, expression: str, context: Mapping[str, object]) -> JSON:
        """Evaluate a bare expression (no braces) to a JSON value."""
        try:
            compiled = self._compiler.compiled("expression", expression)
        except Exception as exc:
            raise _failure("expression", expression, exc) from exc
        job = functools.partial(self._evaluate, compiled, expression, dict(context))
        return await self._run(compiled.inline, job)

    def renders_inline(self, value: JSON, expressions: Sequence[str]) -> bool:
        """True when ``render(value)`` and ``evaluate`` of each expression run on the caller's
        thread (a template that does not compile fails at once: also inline)."""
        try:
            compiled = list(self._prepare(value).values())
            compiled += [self._compiler.compiled("expression", e) for e in expressions]
        except Exception:
            return True
        return len(compiled) <= MAX_INLINE_STRINGS and all(c.inline for c in compiled)

    async def _run(self, inline: bool, job: Callable[[], _T]) -> _T:
        budget = Budget(self._limits.time_ms, self._limits.max_steps)
        if inline:
            return self._within(budget, job)
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._within, budget, job)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller gave up (a node timeout, a shutdown): stop the thread too, and return
            # only once it has stopped, so a timed-out render holds no thread afterwards.
            budget.cancel()
            await asyncio.wait([future])
            if not future.cancelled():
                future.exception()  # retrieved: nobody else will
            raise

    def _within(self, budget: Budget, job: Callable[[], _T]) -> _T:
        budget.restart_clock()  # the time budget counts from the start, not from the queue
        previous = tb.activate(budget)
        with self._lock:
            self.running += 1
        try:
            if budget.cancelled:
                raise TemplateError("the render was cancelled before it started")
            return job()
        finally:
            tb.activate(previous)
            with self._lock:
                self.running -= 1

    def _prepare(self, value: JSON) -> dict[str, Compiled]:
        """Compile every template in ``value`` (here, so the render thread never touches the
        cache)."""
        compiled: dict[str, Compiled] = {}
        for text in _strings(value):
            if ("{{" in text or "{%" in text) and text not in compiled:
                try:
                    compiled[text] = self._compiler.compiled("template", text)
                except Exception as exc:
                    raise _failure("template", text, exc) from exc
        return compiled

    def _check(self, kind: str, text: str) -> str | None:
        try:
            self._compiler.compiled(kind, text)  # compiling also finds unknown filters and tests
        except Exception as exc:
            return _reason(exc)
        return None

    def _render(
        self, value: JSON, variables: dict[str, object], compiled: dict[str, Compiled]
    ) -> JSON:
        if isinstance(value, str):
            found = compiled.get(value)
            return value if found is None else _render_string(found, value, variables)
        if isinstance(value, dict):
            return {k: self._render(inner, variables, compiled) for k, inner in value.items()}
        if isinstance(value, list):
            return [self._render(inner, variables, compiled) for inner in value]
        return value

    @staticmethod
    def _evaluate(compiled: Compiled, text: str, variables: dict[str, object]) -> JSON:
        try:
            return _to_json(_value(compiled.template, variables))
        except Exception as exc:
            raise _failure("expression", text, exc) from exc


def _copy(value: JSON) -> JSON:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _render_string(compiled: Compiled, text: str, variables: dict[str, object]) -> JSON:
    try:
        if compiled.native:
            return _to_json(_value(compiled.template, variables))
        return _join_bounded(compiled.template.generate(variables))
    except Exception as exc:
        raise _failure("template", text, exc) from exc


def _value(template: Template, variables: dict[str, object]) -> object:
    # What TemplateExpression.__call__ does, minus its Undefined handling (ours is _to_json).
    context = template.new_context(variables)
    for _ in template.root_render_func(context):
        pass
    return context.vars["result"]


def _strings(value: JSON) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)
