"""Compiling templates: parse, classify (inline or not), rewrite for the budget, cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import jinja2
from jinja2 import Template, nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from cadenza.infrastructure.template_rewrite import BudgetRewrite

CACHE_SIZE: Final = 4096  # compiled templates and expressions kept (least recently used go)

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
    [
        "default",
        "d",
        "tojson",
        "string",
        "length",
        "count",
        "lower",
        "upper",
        "trim",
        "int",
        "float",
        "first",
        "last",
    ]
)


@dataclass(frozen=True)
class Compiled:
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


class Compiler:
    """Compiles templates and bare expressions for one environment, with an LRU cache.
    Thread-safe (the cache is behind a lock), though renders compile on the caller's thread."""

    def __init__(self, env: SandboxedEnvironment) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], Compiled] = OrderedDict()

    def compiled(self, kind: str, text: str) -> Compiled:
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

    def _compile(self, text: str) -> Compiled:
        ast = self._env.parse(text)
        inline = _inline(ast)
        BudgetRewrite().visit(ast)
        expression = _single_expression(ast)
        if expression is None:
            ast.set_environment(self._env)
            return Compiled(False, inline, self._env.from_string(ast))
        return Compiled(True, inline, self._assign_result(expression))

    def _compile_expression(self, text: str) -> Compiled:
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
        return Compiled(True, inline, self._assign_result(rewritten))

    def _assign_result(self, expression: nodes.Expr) -> Template:
        body: list[nodes.Node] = [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)]
        ast = nodes.Template(body, lineno=1)
        ast.set_environment(self._env)
        return self._env.from_string(ast)
