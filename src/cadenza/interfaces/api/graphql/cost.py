"""What one GraphQL operation may cost: database queries and rows, counted as it runs.

Depth, alias and token limits bound a document's shape, not its work: 15 aliases of
``instances(limit: 500) { items { tasks { id } } }`` once made 1,035 database queries in one
request. So every resolver that reads the store is wrapped in ``costly``: it spends one query
from the operation's ``Budget`` before it runs, and the rows it returns after. Past either
limit the resolver raises ``QueryTooCostly`` and the whole operation answers ``data: null``
with that one error (code ``QUERY_TOO_COSTLY``): a partial answer would invite retrying the
same query. A static estimate cannot know how many processes or instances a list returns,
so the count is exact, of what actually ran; the limits bound the work of one request to
``MAX_QUERIES`` (small, indexed) queries and ``MAX_ROWS`` rows.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension

MAX_QUERIES = 100  # store reads per operation (each list or lookup resolver is one)
MAX_ROWS = 10_000  # rows those reads may return in total (a REST page has at most 1,000)

P = ParamSpec("P")
T = TypeVar("T")


class QueryTooCostly(Exception):
    """The operation needs more store reads or rows than one request may make."""


@dataclass
class Budget:
    queries: int = 0
    rows: int = 0

    def spend_query(self) -> None:
        self.queries += 1
        if self.queries > MAX_QUERIES:
            raise QueryTooCostly(
                f"this operation needs more than {MAX_QUERIES} database queries (each list "
                "or lookup field, once per parent item, is one): ask for nested lists on "
                "fewer items (a smaller limit), or split the operation"
            )

    def spend_rows(self, count: int) -> None:
        self.rows += count
        if self.rows > MAX_ROWS:
            raise QueryTooCostly(
                f"this operation reads more than {MAX_ROWS} rows: use smaller limits, or "
                "fewer aliases of the same list"
            )


_budget: ContextVar[Budget] = ContextVar("graphql_budget")


def _size(result: object) -> int:
    items = getattr(result, "items", None)  # a page
    if isinstance(items, list):
        return len(items)
    return len(result) if isinstance(result, list) else 1


def costly(resolver: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Charge the running operation one query, and then the rows ``resolver`` returns."""

    @functools.wraps(resolver)
    async def charged(*args: P.args, **kwargs: P.kwargs) -> T:
        budget = _budget.get()
        budget.spend_query()
        result = await resolver(*args, **kwargs)
        budget.spend_rows(_size(result))
        return result

    return charged


class CostLimit(SchemaExtension):
    """Gives each operation its own budget; if it ran out, the answer is that one error."""

    def on_execute(self) -> Iterator[None]:
        token = _budget.set(Budget())
        try:
            yield
        finally:
            _budget.reset(token)
        result = self.execution_context.result
        if isinstance(result, ExecutionResult) and result.errors:
            over = [e for e in result.errors if isinstance(e.original_error, QueryTooCostly)]
            if over:
                result.data = None
                result.errors = [
                    GraphQLError(over[0].message, original_error=over[0].original_error)
                ]
