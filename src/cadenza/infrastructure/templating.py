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
from collections import OrderedDict
from collections.abc import Callable, Iterator, KeysView, Mapping, ValuesView
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

import jinja2
from jinja2 import Template, Undefined, nodes
from jinja2.parser import Parser

from cadenza.application.ports import TemplateError
from cadenza.domain.json import JSON
from cadenza.infrastructure import template_budget as tb
from cadenza.infrastructure.template_budget import MAX_OUTPUT, Budget, refuse
from cadenza.infrastructure.template_guards import BudgetRewrite
from cadenza.infrastructure.template_sandbox import sandbox

MAX_VALUES: Final = 1_000_000  # most values converted into one JSON result
CACHE_SIZE: Final = 4096  # compiled templates and expressions kept (least recently used go)
MAX_INLINE_STRINGS: Final = 16  # a value with more templated strings than this goes to a thread

_PREVIEW: Final = 60
# What a template may use and still render inline: lookups, conditions, tests and filters with
# constant arguments, and comparisons with a constant. Its cost is then linear in the template's
# text plus the size of what it looks up, with no count it controls (no loop, call, operator).
_INLINE_NODES: Final = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Const,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.CondExpr,
    nodes.If,
    nodes.Test,
    nodes.Filter,
)
_INLINE_FILTERS: Final = frozenset(
    ["default", "d", "tojson", "string", "length", "count", "lower", "upper", "trim"]
    + ["int", "float", "first", "last"]
)
_T = TypeVar("_T")


@dataclass(frozen=True)
class TemplateLimits:
    """The budget of one render (settings ``template_time_ms``, ``template_max_steps``) and
    the number of threads that run renders (``template_threads``)."""

    time_ms: int = 200
    max_steps: int = 1_000_000
    threads: int = 4


@dataclass(frozen=True)
class _Compiled:
    native: bool  # exactly one {{ expr }}: the result keeps its JSON type
    inline: bool  # cheap enough to render on the caller's thread
    template: Template


def _inline(node: nodes.Node) -> bool:
    return all(_inline_node(n) for n in (node, *node.find_all(nodes.Node)))


def _inline_node(node: nodes.Node) -> bool:
    if not isinstance(node, _INLINE_NODES):
        return False
    if isinstance(node, nodes.Filter) and node.name not in _INLINE_FILTERS:
        return False
    if isinstance(node, nodes.Filter | nodes.Test):
        # keyword arguments are Keyword nodes, which are not inline nodes
        constant = all(isinstance(arg, nodes.Const) for arg in node.args)
        return constant and node.dyn_args is None and node.dyn_kwargs is None
    if isinstance(node, nodes.Compare):  # two looked-up values may take long to compare
        sides = [node.expr, *(op.expr for op in node.ops)]
        return sum(not isinstance(side, nodes.Const) for side in sides) <= 1
    return True


def _single_expression(ast: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is exactly one ``{{ expr }}`` (blanks around it)."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts = [
        part
        for part in ast.body[0].nodes
        if not (isinstance(part, nodes.TemplateData) and not part.data.strip())
    ]
    if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
        return parts[0]
    return None


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
    (CACHE_SIZE entries, least recently used evicted). ``close()`` stops the thread pool.
    """

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self._limits = limits or TemplateLimits()
        self._env = sandbox()
        self._cache: OrderedDict[tuple[str, str], _Compiled] = OrderedDict()
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
        variables = dict(context)
        compiled = self._prepare(value)
        inline = len(compiled) <= MAX_INLINE_STRINGS and all(c.inline for c in compiled.values())
        job = functools.partial(self._render, value, variables, compiled)
        return await self._run(inline, job)

    async def evaluate(self, expression: str, context: Mapping[str, object]) -> JSON:
        """Evaluate a bare expression (no braces) to a JSON value."""
        try:
            compiled = self._compiled("expression", expression)
        except Exception as exc:
            raise _failure("expression", expression, exc) from exc
        job = functools.partial(self._evaluate, compiled, expression, dict(context))
        return await self._run(compiled.inline, job)

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

    def _prepare(self, value: JSON) -> dict[str, _Compiled]:
        """Compile every template in ``value`` (here, so the render thread never touches the
        cache)."""
        compiled: dict[str, _Compiled] = {}
        for text in _strings(value):
            if ("{{" in text or "{%" in text) and text not in compiled:
                try:
                    compiled[text] = self._compiled("template", text)
                except Exception as exc:
                    raise _failure("template", text, exc) from exc
        return compiled

    def _check(self, kind: str, text: str) -> str | None:
        try:
            self._compiled(kind, text)  # compiling also finds unknown filters and tests
        except Exception as exc:
            return _reason(exc)
        return None

    def _render(
        self, value: JSON, variables: dict[str, object], compiled: dict[str, _Compiled]
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
    def _evaluate(compiled: _Compiled, text: str, variables: dict[str, object]) -> JSON:
        try:
            return _to_json(_value(compiled.template, variables))
        except Exception as exc:
            raise _failure("expression", text, exc) from exc

    def _compiled(self, kind: str, text: str) -> _Compiled:
        key = (kind, text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = self._compile_expression(text) if kind == "expression" else self._compile(text)
        with self._lock:
            self._cache[key] = compiled
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def _compile(self, text: str) -> _Compiled:
        ast = self._env.parse(text)
        inline = _inline(ast)
        BudgetRewrite().visit(ast)
        expression = _single_expression(ast)
        if expression is None:
            ast.set_environment(self._env)
            return _Compiled(False, inline, self._env.from_string(ast))
        return _Compiled(True, inline, self._assign_result(expression))

    def _compile_expression(self, text: str) -> _Compiled:
        # As Environment.compile_expression, but returning the Template: _value runs it and
        # leaves Undefined for _to_json, which also finds it nested inside lists and dicts.
        parser = Parser(self._env, text, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            line = parser.stream.current.lineno
            raise jinja2.TemplateSyntaxError("chunk after expression", line, None, None)
        inline = _inline(expression)
        rewritten = BudgetRewrite().visit(expression)
        assert isinstance(rewritten, nodes.Expr)
        return _Compiled(True, inline, self._assign_result(rewritten))

    def _assign_result(self, expression: nodes.Expr) -> Template:
        body: list[nodes.Node] = [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)]
        ast = nodes.Template(body, lineno=1)
        ast.set_environment(self._env)
        return self._env.from_string(ast)


def _render_string(compiled: _Compiled, text: str, variables: dict[str, object]) -> JSON:
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
