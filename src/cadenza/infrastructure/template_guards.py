"""Size checks made BEFORE an operation allocates: str/bytes/int methods, ``%`` and
``str.format``, the filters whose result size an argument controls, ``lipsum``.

An operation whose result size an argument controls (a width, a count, a separator, a format
spec) is refused when the result would exceed MAX_OUTPUT; every other result is at most a small
constant times its inputs and is checked right after (``template_budget.checked``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from types import GeneratorType
from typing import Final

from jinja2.utils import generate_lorem_ipsum

from cadenza.infrastructure import template_budget as tb
from cadenza.infrastructure.template_budget import MAX_OUTPUT, refuse

MAX_LIPSUM_WORDS: Final = 10_000  # lipsum(n, max=...) may produce at most n * max words
MAX_SLOW_INPUT: Final = 100_000  # input of the Python-loop filters wordwrap, urlize, pprint
MAX_SLOW_WORK: Final = 1_000_000_000  # wordwrap: len(text) ** 2 / width, the long-word case
MAX_JSON_INDENT: Final = 8  # tojson(indent=...): each nesting level repeats the indent

_Args = Sequence[object]
_Kwargs = Mapping[str, object]


def _len(value: object) -> int:
    return len(value) if isinstance(value, str | bytes) else len(str(value))


def _at_most(size: int, what: str) -> None:
    if size > MAX_OUTPUT:
        refuse(f"{what} would be longer than {MAX_OUTPUT} characters")


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _arg(args: _Args, kwargs: _Kwargs, index: int, name: str, default: object) -> object:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


# ---- str and bytes methods --------------------------------------------------------------------
def check_method(obj: object, args: _Args, kwargs: _Kwargs) -> _Args:
    """Refuse a str/bytes method call whose result would be too long; returns the arguments to
    call with (``join`` consumes its iterable here, to measure it)."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, int) and name == "to_bytes":
        _at_most(_int(_arg(args, kwargs, 0, "length", 1)), "to_bytes()")
    if not isinstance(owner, str | bytes):
        return args
    what = f"{name}()"
    size = len(owner)
    if name in ("ljust", "rjust", "center", "zfill"):
        _at_most(max(size, _int(_arg(args, kwargs, 0, "width", 0))), what)
    elif name == "expandtabs":
        tab = max(_int(_arg(args, kwargs, 0, "tabsize", 8)), 1)
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        _at_most(size + tabs * tab, what)
    elif name == "replace":
        _check_replace(owner, args, kwargs, what)
    elif name == "join":
        given = args[0] if args else ()
        items = [] if isinstance(given, str | bytes) else list(given)  # type: ignore[call-overload]
        parts = sum(_len(item) for item in items)
        _at_most(parts + size * max(len(items) - 1, 0), what)
        return [items, *args[1:]] if args else args
    elif name == "translate" and isinstance(args[0] if args else None, Mapping):
        table = args[0]
        assert isinstance(table, Mapping)
        longest = max((_len(v) for v in table.values() if v is not None), default=1)
        _at_most(size * max(longest, 1), what)
    return args


def _check_replace(owner: str | bytes, args: _Args, kwargs: _Kwargs, what: str) -> None:
    old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return
    count = _arg(args, kwargs, 2, "count", -1)
    found = owner.count(old) if old else len(owner) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _at_most(len(owner) + found * max(len(new) - len(old), 0), what)


# ---- printf-style % and str.format --------------------------------------------------------------
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)")


def check_percent(fmt: object, values: object) -> None:
    """``fmt % values`` with a str ``fmt``: no ``*`` widths, no width above MAX_OUTPUT, and
    at most MAX_OUTPUT characters in total, counting each conversion as its widest value."""
    if not isinstance(fmt, str):
        return
    if isinstance(values, Mapping):
        widest = max((_len(v) for v in values.values()), default=0)
    elif isinstance(values, tuple):
        widest = max((_len(v) for v in values), default=0)
    else:
        widest = _len(values)
    total = len(fmt)
    for match in _PERCENT.finditer(fmt):
        width, precision, _ = match.groups()
        if width == "*" or precision == "*":
            refuse("'*' widths are not allowed in % formatting")
        numbers = [int(n) for n in (width, precision) if n]
        total += max([widest, *numbers])
    _at_most(total, "% formatting")


_SPEC_NUMBER = re.compile(r"\d+")


class BoundedFormatter(string.Formatter):
    """Mixed into Jinja's sandboxed formatter: refuses big widths and counts the output."""

    _total = 0

    def format_field(self, value: object, format_spec: str) -> str:
        for number in _SPEC_NUMBER.findall(format_spec):
            _at_most(int(number), "a format width")
        text: str = super().format_field(value, format_spec)
        self._total += len(text)
        _at_most(self._total, "str.format()")
        return text


# ---- filters and globals --------------------------------------------------------------------
def _check_filter(name: str, args: _Args, kwargs: _Kwargs) -> _Args:
    """``args`` start at the filtered value (Jinja's context/environment argument removed);
    returns them, with an iterable the check had to consume replaced by a list."""
    value = args[0] if args else ""
    if name == "center":
        _at_most(max(_len(value), _int(_arg(args, kwargs, 1, "width", 80))), name)
    elif name == "indent":
        width = _arg(args, kwargs, 1, "width", 4)
        pad = len(width) if isinstance(width, str) else _int(width)
        _at_most(_len(value) + (str(value).count("\n") + 1) * pad, name)
    elif name == "wordwrap":
        wrap = _arg(args, kwargs, 4, "wrapstring", None)
        _at_most(_len(value) * (1 + (_len(wrap) if wrap is not None else 1)), name)
        # textwrap is a Python loop that copies what is left of a long word at every break
        width = max(_int(_arg(args, kwargs, 1, "width", 79)), 1)
        _python_loop(name, _len(value), _len(value) ** 2 // width)
    elif name in ("urlize", "pprint"):
        _python_loop(name, _len(value) if name == "urlize" else tb.weigh(value), 0)
    elif name == "tojson":
        indent = _arg(args, kwargs, 1, "indent", None)
        if isinstance(indent, int) and indent > MAX_JSON_INDENT:
            refuse(f"tojson indent is above the limit of {MAX_JSON_INDENT}")
    elif name == "replace":
        if isinstance(value, str):
            _check_replace(value, args[1:], kwargs, name)
    elif name == "format":
        check_percent(value, dict(kwargs) if kwargs else tuple(args[1:]))
    elif name in ("batch", "slice"):
        _at_most(_int(args[1] if len(args) > 1 else 0), f"{name} count")
    elif name in ("join", "sum") and not isinstance(value, str | Mapping):
        items = list(value)  # type: ignore[call-overload]
        if name == "join":
            separator = _arg(args, kwargs, 1, "d", "")
            has_attribute = _arg(args, kwargs, 2, "attribute", None) is not None
            parts = 0 if has_attribute else sum(_len(item) for item in items)
            _at_most(parts + _len(separator) * max(len(items) - 1, 0), name)
        elif not isinstance(_arg(args, kwargs, 2, "start", 0), int | float):
            tb.checked([*items, _arg(args, kwargs, 2, "start", 0)])  # list concatenation
        return [items, *args[1:]]
    return args


_CHECKED_FILTERS: Final = frozenset(
    [
        "center",
        "indent",
        "wordwrap",
        "replace",
        "format",
        "batch",
        "slice",
        "join",
        "sum",
        "urlize",
        "pprint",
        "tojson",
    ]
)


def _python_loop(name: str, size: int, work: int) -> None:
    # These filters are Python loops the budget cannot interrupt: keep each call short.
    if size > MAX_SLOW_INPUT or work > MAX_SLOW_WORK:
        refuse(f"{name} works on at most {MAX_SLOW_INPUT} characters or items")


def _leading(func: Callable[..., object]) -> int:
    # Jinja passes a context, eval context or environment first to decorated filters.
    return 1 if getattr(func, "jinja_pass_arg", None) is not None else 0


def guard_filter(name: str, func: Callable[..., object]) -> Callable[..., object]:
    """``func`` with a budget step, the size checks of its arguments, and a size check of
    its result."""
    skip = _leading(func)
    if name not in _CHECKED_FILTERS:

        @wraps(func)
        def stepped(*args: object, **kwargs: object) -> object:
            tb.step()
            result = func(*args, **kwargs)
            if type(result) is str and len(result) <= MAX_OUTPUT:
                return result  # the common case, without a call to checked()
            if isinstance(result, GeneratorType):  # map, select...: a step per item
                return tb.counted(result)
            return tb.checked(result)

        return stepped

    @wraps(func)
    def guarded(*args: object, **kwargs: object) -> object:
        tb.step()
        checked = _check_filter(name, args[skip:], kwargs)
        return tb.checked(func(*args[:skip], *checked, **kwargs))

    return guarded


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum`` limited to MAX_LIPSUM_WORDS words (``n`` paragraphs of ``max``)."""
    if n * max > MAX_LIPSUM_WORDS:
        refuse(f"lipsum() may produce at most {MAX_LIPSUM_WORDS} words (n * max)")
    return generate_lorem_ipsum(n, html, min, max)
