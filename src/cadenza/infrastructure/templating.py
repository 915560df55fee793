"""The ``Templates`` port on Jinja2's immutable sandbox, with explicit limits on runaway work."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, KeysView, Mapping, ValuesView
from typing import Final, NoReturn

import jinja2
from jinja2 import ChainableUndefined, Template, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from cadenza.application.ports import TemplateError
from cadenza.domain.json import JSON

MAX_EXPONENT: Final = 100  # largest exponent accepted by ``**``
MAX_INT_BITS: Final = 4096  # largest integer ``**`` and ``*`` may produce, in bits
MAX_STRING: Final = 100_000  # longest string/list ``*`` may produce, in chars/items
MAX_RANGE: Final = 100_000  # most items ``range()`` may produce
MAX_OUTPUT: Final = 1_000_000  # longest rendered string, in chars
MAX_VALUES: Final = 1_000_000  # most values converted into one JSON result
CACHE_SIZE: Final = 4096  # compiled templates and expressions kept (least recently used go)

_PREVIEW: Final = 60


def _refuse(reason: str) -> NoReturn:
    # SecurityError is Jinja's "the sandbox said no"; callers turn it into TemplateError.
    raise SecurityError(reason)


def _check_power(base: object, exponent: object) -> None:
    if isinstance(exponent, int | float) and exponent > MAX_EXPONENT:
        _refuse(f"exponent is above the limit of {MAX_EXPONENT}")
    # The result has about bit_length * exponent bits: refuse before computing it.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base).bit_length() * exponent > MAX_INT_BITS
    ):
        _refuse(f"result of ** would be larger than {MAX_INT_BITS} bits")


def _check_product(left: object, right: object) -> None:
    for seq, times in ((left, right), (right, left)):
        if not isinstance(seq, str | list | tuple) or not isinstance(times, int):
            continue
        if len(seq) * times > MAX_STRING:
            _refuse(f"repetition with * would be longer than {MAX_STRING} items")
    if not isinstance(left, int) or not isinstance(right, int):
        return
    if left.bit_length() + right.bit_length() > MAX_INT_BITS:
        _refuse(f"result of * would be larger than {MAX_INT_BITS} bits")


def _bounded_range(*args: int) -> range:
    """``range`` limited to MAX_RANGE items (our own limit, not Jinja's module global)."""
    numbers = range(*args)
    # Slicing and truth-testing work on any size, unlike len(), which overflows.
    if numbers[MAX_RANGE:]:
        _refuse(f"range() is larger than the limit of {MAX_RANGE} items")
    return numbers


def _fromjson(text: object) -> JSON:
    """Filter: parse a JSON document held in a string."""
    if not isinstance(text, str):
        raise TemplateError(f"fromjson expects a string, got {type(text).__name__}")
    try:
        parsed: JSON = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"fromjson: invalid JSON: {exc}") from exc
    return parsed


class _Sandbox(ImmutableSandboxedEnvironment):
    # These operators go through call_binop, which checks sizes before computing.
    intercepted_binops = frozenset(["**", "*"])

    def call_binop(self, context: Context, operator: str, left: object, right: object) -> object:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: object, attribute: str) -> object:
        # Contexts are JSON: ``inputs.items`` must be the key "items", not the dict method.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: object, attribute: str) -> NoReturn:
        # The sandbox returns an Undefined that raises only when used; ChainableUndefined never
        # uses it, so the refusal would be silent. Refuse at the access instead.
        _refuse(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


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

    def convert(item: object) -> JSON:
        nonlocal remaining
        remaining -= 1
        if remaining < 0:  # aliasing can make a small structure expand enormously
            _refuse(f"result has more than {MAX_VALUES} values")
        if item is None or isinstance(item, Undefined):
            return None
        if isinstance(item, bool | int | float):
            return item
        if isinstance(item, str):
            if len(item) > MAX_OUTPUT:
                _refuse(f"result is longer than {MAX_OUTPUT} characters")
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
            _refuse(f"output is longer than {MAX_OUTPUT} characters")
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

    Limits, refused with a TemplateError rather than computed:

    - ``**``: exponent above MAX_EXPONENT (100), or an integer result above MAX_INT_BITS (4096);
    - ``*``: a string/list/tuple longer than MAX_STRING (100_000), or an integer result above
      MAX_INT_BITS;
    - ``range()``: more than MAX_RANGE (100_000) items;
    - a rendered string longer than MAX_OUTPUT (1_000_000) characters, or a value result with
      more than MAX_VALUES (1_000_000) values.

    These bound the obvious blow-ups only; Jinja cannot bound CPU time or every allocation
    (e.g. ``"x".ljust(10**9)`` or nested loops), so run untrusted templates under a deadline.
    Compiled templates are cached (CACHE_SIZE entries, least recently used evicted).
    """

    def __init__(self) -> None:
        self._env = _Sandbox(undefined=ChainableUndefined, keep_trailing_newline=True)
        self._env.globals["range"] = _bounded_range
        self._env.filters["fromjson"] = _fromjson
        # (kind, text) -> (whether it yields a native value, compiled template)
        self._cache: OrderedDict[tuple[str, str], tuple[bool, Template]] = OrderedDict()

    def check_template(self, text: str) -> str | None:
        """None when ``text`` compiles as a template, else the reason with its line."""
        return self._check("template", text)

    def check_expression(self, text: str) -> str | None:
        """None when ``text`` compiles as a bare expression, else the reason with its line."""
        return self._check("expression", text)

    def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        """Render every string in ``value``; exactly one ``{{ expr }}`` keeps its JSON type."""
        return self._render(value, dict(context))

    def evaluate(self, expression: str, context: Mapping[str, object]) -> JSON:
        """Evaluate a bare expression (no braces) to a JSON value."""
        try:
            _, template = self._compiled("expression", expression)
            return _to_json(self._value(template, dict(context)))
        except Exception as exc:
            raise _failure("expression", expression, exc) from exc

    def _check(self, kind: str, text: str) -> str | None:
        try:
            self._compiled(kind, text)  # compiling also finds unknown filters and tests
        except Exception as exc:
            return _reason(exc)
        return None

    def _render(self, value: JSON, variables: dict[str, object]) -> JSON:
        if isinstance(value, str):
            if "{{" not in value and "{%" not in value:
                return value  # fast path: most strings hold no template at all
            return self._render_string(value, variables)
        if isinstance(value, dict):
            return {key: self._render(inner, variables) for key, inner in value.items()}
        if isinstance(value, list):
            return [self._render(inner, variables) for inner in value]
        return value

    def _render_string(self, text: str, variables: dict[str, object]) -> JSON:
        try:
            native, template = self._compiled("template", text)
            if native:
                return _to_json(self._value(template, variables))
            return _join_bounded(template.generate(variables))
        except Exception as exc:
            raise _failure("template", text, exc) from exc

    @staticmethod
    def _value(template: Template, variables: dict[str, object]) -> object:
        # What TemplateExpression.__call__ does, minus its Undefined handling (ours is _to_json).
        context = template.new_context(variables)
        for _ in template.root_render_func(context):
            pass
        return context.vars["result"]

    def _compiled(self, kind: str, text: str) -> tuple[bool, Template]:
        key = (kind, text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        compiled = self._compile_expression(text) if kind == "expression" else self._compile(text)
        self._cache[key] = compiled
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return compiled

    def _compile(self, text: str) -> tuple[bool, Template]:
        ast = self._env.parse(text)
        expression = _single_expression(ast)
        if expression is None:
            return False, self._env.from_string(ast)
        return True, self._assign_result(expression)

    def _compile_expression(self, text: str) -> tuple[bool, Template]:
        # As Environment.compile_expression, but returning the Template: _value runs it and
        # leaves Undefined for _to_json, which also finds it nested inside lists and dicts.
        parser = Parser(self._env, text, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            line = parser.stream.current.lineno
            raise jinja2.TemplateSyntaxError("chunk after expression", line, None, None)
        return True, self._assign_result(expression)

    def _assign_result(self, expression: nodes.Expr) -> Template:
        body: list[nodes.Node] = [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)]
        ast = nodes.Template(body, lineno=1)
        ast.set_environment(self._env)
        return self._env.from_string(ast)
