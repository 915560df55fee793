"""The AST rewrite that lets the budget see every loop iteration, every ``~``, every container
literal and every block written without ``finalize``; the filters it inserts; ``finalize``.
"""

from __future__ import annotations

from typing import Final

from jinja2 import nodes, pass_context
from jinja2.runtime import Context
from jinja2.visitor import NodeTransformer

from cadenza.infrastructure import template_budget as tb
from cadenza.infrastructure.template_budget import MAX_OUTPUT, MAX_PRODUCED, refuse

# Filters the rewrite inserts. The names are not identifiers, so template text cannot use them.
LOOP_FILTER: Final = "cadenza-loop"
CONCAT_FILTER: Final = "cadenza-concat"
VALUE_FILTER: Final = "cadenza-value"
PRODUCED_FILTER: Final = "cadenza-produced"


@pass_context  # a context filter is never evaluated at compile time, so every loop is counted
def loop_filter(_context: Context, iterable: object, literal_chars: int) -> object:
    if tb.current() is None:
        return iterable
    return tb.counted(iter(iterable), literal_chars)  # type: ignore[call-overload]


def concat_filter(parts: tuple[object, ...]) -> str:
    """``a ~ b ~ c``, refused before joining when the result would be too long."""
    texts = [str(part) for part in parts]
    if sum(len(text) for text in texts) > MAX_OUTPUT:
        refuse(f"~ would be longer than {MAX_OUTPUT} characters")
    return "".join(texts)


def value_filter(value: object) -> object:
    """A list, tuple or dict literal: built already, refused if it makes the value too large."""
    return tb.checked(value)


def produced_filter(value: object) -> object:
    """The result of a ``{% filter %}`` block, which is written without ``finalize``."""
    tb.produce(len(value) if isinstance(value, str) else len(str(value)))
    return value


def finalize(value: object) -> object:
    """Every ``{{ }}`` in text: the characters count toward the render's produced text."""
    text = value if type(value) is str else str(value)
    budget = tb.current()
    if budget is not None:
        budget.produced += len(text)  # inlined Budget.produce: this runs for every {{ }}
        if budget.produced > MAX_PRODUCED:
            budget.produce(0)
    return text


class BudgetRewrite(NodeTransformer):
    """Rewrite a parsed template so the budget sees loops, ``~`` and container literals."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        literal = sum(_literal_chars(child) for child in node.body)
        node.iter = nodes.Filter(
            node.iter, LOOP_FILTER, [nodes.Const(literal)], [], None, None, lineno=node.lineno
        )
        return node

    def visit_FilterBlock(self, node: nodes.FilterBlock) -> nodes.Node:
        self.generic_visit(node)
        node.filter = nodes.Filter(
            node.filter, PRODUCED_FILTER, [], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return nodes.Filter(parts, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._checked(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._checked(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":
            return node  # an assignment target
        return self._checked(node)

    def _checked(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, VALUE_FILTER, [], [], None, None, lineno=node.lineno)


def _literal_chars(node: nodes.Node) -> int:
    """Plain text in ``node`` outside nested loops and macros (those count their own)."""
    if isinstance(node, nodes.TemplateData):
        return len(node.data)
    if isinstance(node, nodes.For | nodes.Macro):
        return 0
    return sum(_literal_chars(child) for child in node.iter_child_nodes())
