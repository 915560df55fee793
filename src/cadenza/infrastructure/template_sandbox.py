"""The Jinja sandbox environment: Jinja's immutable sandbox plus Cadenza's limits.

Every call, filter and intercepted operator takes a budget step; arithmetic, repetition,
concatenation and formatting are size-checked before they compute (``template_guards``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Final, NoReturn

from jinja2 import ChainableUndefined
from jinja2.runtime import Context
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

from cadenza.application.ports import TemplateError
from cadenza.domain.json import JSON
from cadenza.infrastructure import template_budget as tb
from cadenza.infrastructure import template_guards as guards
from cadenza.infrastructure import template_rewrite as rewrite
from cadenza.infrastructure.template_budget import MAX_OUTPUT, MAX_VALUE

MAX_EXPONENT: Final = 100  # largest exponent accepted by ``**``
MAX_INT_BITS: Final = 4096  # largest integer ``**`` and ``*`` may produce, in bits
MAX_STRING: Final = 100_000  # longest string/list ``*`` may produce, in chars/items
MAX_RANGE: Final = 100_000  # most items ``range()`` may produce


def _refuse(reason: str) -> NoReturn:
    # SecurityError is Jinja's "the sandbox said no"; callers turn it into TemplateError.
    tb.refuse(reason)


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


def _check_product(left: object, right: object) -> int | None:
    """Refuse ``left * right`` if too large; the weight of a list/tuple result, else None."""
    for seq, times in ((left, right), (right, left)):
        if not isinstance(seq, str | bytes | list | tuple) or not isinstance(times, int):
            continue
        if len(seq) * times > MAX_STRING:
            _refuse(f"repetition with * would be longer than {MAX_STRING} items")
        weight = tb.weigh(seq) * max(times, 0)  # [big] * n repeats big n times when written
        if weight > MAX_VALUE:
            _refuse(f"repetition with * would be larger than {MAX_VALUE} characters and items")
        return weight if isinstance(seq, list | tuple) else None
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_INT_BITS
    ):
        _refuse(f"result of * would be larger than {MAX_INT_BITS} bits")
    return None


def _check_sum(left: object, right: object) -> int | None:
    """Refuse ``left + right`` if too large; the weight of a list/tuple result, else None."""
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        if len(left) + len(right) > MAX_OUTPUT:
            _refuse(f"+ would build a string longer than {MAX_OUTPUT} characters")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        if len(left) + len(right) > tb.MAX_ITEMS:
            _refuse(f"+ would build a list of more than {tb.MAX_ITEMS} items")
        weight = tb.weigh(left) + tb.weigh(right)
        if weight > MAX_VALUE:
            _refuse(f"+ would build a value larger than {MAX_VALUE} characters and items")
        return weight
    return None


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
    intercepted_binops = frozenset(["**", "*", "+", "%"])

    def call_binop(self, context: Context, operator: str, left: object, right: object) -> object:
        tb.step()
        weight = None  # of a list/tuple result, known from its operands without a walk
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            weight = _check_product(left, right)
        elif operator == "+":
            weight = _check_sum(left, right)
        elif operator == "%":
            guards.check_percent(left, right)
        result = super().call_binop(context, operator, left, right)
        return tb.checked(result) if weight is None else tb.remember(result, weight)

    def call(__self, __context: Context, __obj: object, *args: object, **kwargs: object) -> object:
        tb.step()
        checked = guards.check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *checked, **kwargs)
        if "caller" in kwargs and isinstance(result, str):
            tb.produce(len(result))  # a {% call %} block's output is written without finalize
        return tb.checked(result)

    def getitem(self, obj: object, argument: object) -> object:
        # Filters with an ``attribute`` (sort, unique, groupby, min, max, sum...) look it up
        # here once per item, inside one C-level call: count those lookups like iterations.
        budget = tb.current()
        if budget is not None:
            budget.iteration(0)
        return super().getitem(obj, argument)

    def getattr(self, obj: object, attribute: str) -> object:
        # Contexts are JSON: ``inputs.items`` must be the key "items", not the dict method.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: object, attribute: str) -> NoReturn:
        # The sandbox returns an Undefined that raises only when used; ChainableUndefined never
        # uses it, so the refusal would be silent. Refuse at the access instead.
        _refuse(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def wrap_str_format(self, value: object) -> Callable[..., str] | None:
        # Jinja's own wrapper, with a formatter that refuses big widths and long results.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner = value.__self__  # type: ignore[attr-defined]
        formatter = (
            _BoundedEscapeFormatter(self, escape=owner.escape)
            if isinstance(owner, Markup)
            else _BoundedFormatter(self)
        )
        is_map = value.__name__ == "format_map"  # type: ignore[attr-defined]

        def bounded(*args: object, **kwargs: object) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()  # type: ignore[assignment]
            text: str = type(owner)(formatter.vformat(owner, args, kwargs))
            return text

        return bounded


class _BoundedFormatter(guards.BoundedFormatter, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(guards.BoundedFormatter, SandboxedEscapeFormatter):
    pass


def sandbox() -> _Sandbox:
    """A new environment with every limit installed."""
    env = _Sandbox(
        undefined=ChainableUndefined, keep_trailing_newline=True, finalize=rewrite.finalize
    )
    env.globals["range"] = _bounded_range
    env.globals["lipsum"] = guards.bounded_lipsum
    env.filters["fromjson"] = _fromjson
    for name, func in list(env.filters.items()):
        env.filters[name] = guards.guard_filter(name, func)
    env.filters[rewrite.LOOP_FILTER] = rewrite.loop_filter
    env.filters[rewrite.CONCAT_FILTER] = rewrite.concat_filter
    env.filters[rewrite.VALUE_FILTER] = rewrite.value_filter
    env.filters[rewrite.PRODUCED_FILTER] = rewrite.produced_filter
    return env
