"""The per-render budget of the template sandbox: time, steps, produced text, value sizes.

Jinja runs Python code we cannot preempt, so the sandbox checks a budget cooperatively at
every point where template code can repeat work: each iteration of a ``for`` loop, each call
(functions, methods, macros), each filter and each intercepted operator. Between two such
points a template can only do a bounded amount of work (its own text is finite and every
single operation is size-checked), so checking here bounds the whole render.

The active budget lives in a context variable: a render runs start to end on one thread (the
event loop's for trivial templates, a worker thread otherwise) and the sandbox hooks, called
from compiled template code, have no other way to find it. (A ContextVar is read in ~50 ns,
a threading.local attribute in ~200 ns; the hooks run once per loop iteration and output.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Final, NoReturn

from jinja2.exceptions import SecurityError

MAX_OUTPUT: Final = 1_000_000  # longest string a template may build or render, in chars
MAX_VALUE: Final = 4_000_000  # largest value a template may build, in chars + items (below)
MAX_PRODUCED: Final = 10_000_000  # text one render may produce in total (all {{ }} and loops)
MAX_ITEMS: Final = 100_000  # most items in one list, tuple, dict or set a template builds
_CLOCK_EVERY: Final = 8  # loop iterations between two looks at the clock (calls: every one)


class BudgetExceeded(SecurityError):
    """A render used up its time, steps or produced-text budget, or a value was too large."""


class RenderCancelled(SecurityError):
    """The render was cancelled from outside (the awaiting task was cancelled)."""


def refuse(reason: str) -> NoReturn:
    raise BudgetExceeded(reason)


class Budget:
    """What one render may still spend. ``cancel()`` may be called from any thread."""

    __slots__ = (
        "_deadline",
        "_retained",
        "_weights",
        "cancelled",
        "max_steps",
        "produced",
        "steps",
        "time_ms",
    )

    def __init__(self, time_ms: int, max_steps: int) -> None:
        self.time_ms = time_ms
        self.max_steps = max_steps
        self.steps = 0
        self.cancelled = False
        self._deadline = time.perf_counter() + time_ms / 1000
        self.produced = 0  # characters of text produced so far
        # id -> (value, weight): the value is kept so that its id cannot be reused meanwhile;
        # the weights kept add up to at most MAX_VALUE, then the memo starts over, so it never
        # keeps alive much more than the template itself does
        self._weights: dict[int, tuple[object, int]] = {}
        self._retained = 0

    def cancel(self) -> None:
        self.cancelled = True

    def restart_clock(self) -> None:
        """Start the time budget now (a render may wait for a thread before it starts)."""
        self._deadline = time.perf_counter() + self.time_ms / 1000

    def step(self) -> None:
        """One call, filter or operator: count it and look at the clock and the cancel flag."""
        self.steps += 1
        self.check()  # a call or filter may have worked on 100,000 items: look every time

    def iteration(self, literal_chars: int) -> None:
        """One loop iteration, whose body holds ``literal_chars`` of plain template text."""
        self.steps += 1
        if literal_chars:
            self.produce(literal_chars)
        if self.steps % _CLOCK_EVERY == 0 or self.steps > self.max_steps:
            self.check()

    def produce(self, chars: int) -> None:
        """Text that becomes output (possibly of a block or macro, hence not yet counted)."""
        self.produced += chars
        if self.produced > MAX_PRODUCED:
            refuse(f"produced more than {MAX_PRODUCED} characters of text")

    def check(self) -> None:
        """Raise if the render was cancelled or is over its step or time budget."""
        if self.cancelled:
            raise RenderCancelled("the render was cancelled")
        if self.steps > self.max_steps:
            refuse(f"exceeded the step budget of {self.max_steps} steps")
        if time.perf_counter() > self._deadline:
            refuse(f"exceeded the time budget of {self.time_ms} ms")

    def weight(self, value: object) -> int:
        return _Weigher(self._weights, self).weigh(value)

    def remember(self, value: object, weight: int) -> None:
        """Record the weight of ``value`` (computed from its parts, as for ``a + b``)."""
        if weight > MAX_VALUE:
            refuse(f"a value would be larger than {MAX_VALUE} characters and items")
        self._retained += weight
        if self._retained > MAX_VALUE:
            self._weights.clear()
            self._retained = weight
        self._weights[id(value)] = (value, weight)


_Memo = dict[int, tuple[object, int]]
_CONTAINERS: Final = (list, tuple, dict, set, frozenset)


def weigh(value: object) -> int:
    """The size of ``value`` counted as it would be written out: characters of strings plus
    one per item, where an item referenced twice counts twice. Refuses above MAX_VALUE, so a
    structure that aliases itself (``[x, x]`` repeated) cannot grow exponentially unseen.
    Within a render, each container is walked once (the budget remembers its weight) and the
    walk looks at the clock as it goes."""
    budget = current()
    if budget is not None:
        return budget.weight(value)
    return _Weigher({}, None).weigh(value)


class _Weigher:
    __slots__ = ("_budget", "_memo", "_visits")

    def __init__(self, memo: _Memo, budget: Budget | None) -> None:
        self._memo = memo
        self._budget = budget
        self._visits = 0

    def weigh(self, value: object) -> int:
        if isinstance(value, str | bytes):
            return len(value)
        if not isinstance(value, _CONTAINERS):
            return 1
        known = self._memo.get(id(value))
        if known is not None:
            return known[1]
        if len(value) > MAX_ITEMS:  # per-item work in filters (sort, map...) stays bounded
            refuse(f"a list or mapping would have more than {MAX_ITEMS} items")
        self._visits += 1
        if self._budget is not None and self._visits % 1024 == 0:
            self._budget.check()
        total = 1
        items: Iterator[object] = (
            (part for pair in value.items() for part in pair)
            if isinstance(value, Mapping)
            else iter(value)
        )
        for item in items:
            total += 1 + self.weigh(item)
            if total > MAX_VALUE:
                refuse(f"a value would be larger than {MAX_VALUE} characters and items")
        if self._budget is None:
            self._memo[id(value)] = (value, total)
        else:
            self._budget.remember(value, total)
        return total


_active: ContextVar[Budget | None] = ContextVar("template_budget", default=None)
current = _active.get


def activate(budget: Budget | None) -> Budget | None:
    """Make ``budget`` the one the sandbox checks on this thread; returns the previous one."""
    previous = current()
    _active.set(budget)
    return previous


def step() -> None:
    budget = current()
    if budget is not None:
        budget.step()


def counted(items: Iterator[object], literal_chars: int = 0) -> Iterator[object]:
    """``items``, with a budget step per item (loop iterations, lazy filters such as ``map``),
    and ``literal_chars`` of produced text per item (a loop body's plain text)."""
    budget = current()
    if budget is None:
        return items
    return _counting(items, budget, literal_chars)


def _counting(items: Iterator[object], budget: Budget, literal_chars: int) -> Iterator[object]:
    for item in items:
        budget.iteration(literal_chars)
        yield item


def produce(chars: int) -> None:
    budget = current()
    if budget is not None:
        budget.produce(chars)


def checked(value: object) -> object:
    """``value``, after checking that it is within the size limits."""
    kind = type(value)
    if kind is int or kind is bool or kind is float or value is None:
        return value
    if isinstance(value, str | bytes):
        if len(value) > MAX_OUTPUT:
            refuse(f"a string would be longer than {MAX_OUTPUT} characters")
        return value
    if isinstance(value, _CONTAINERS):
        weigh(value)
    return value


def remember(value: object, weight: int) -> object:
    budget = current()
    if budget is not None:
        budget.remember(value, weight)
    elif weight > MAX_VALUE:
        refuse(f"a value would be larger than {MAX_VALUE} characters and items")
    return value
