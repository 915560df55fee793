"""Application errors as GraphQL errors with ``extensions.code``; anything else is masked.

The codes follow the REST statuses (``extensions.status``): NOT_FOUND 404, FORBIDDEN 403,
UNAUTHENTICATED 401, CONFLICT 409, BAD_USER_INPUT 422, RATE_LIMITED 429, QUOTA_EXCEEDED 429
(a workspace quota refused a start); QUERY_TOO_COSTLY
(422) has no REST twin (see ``cost``). An unexpected exception is logged with its stack and
answered as INTERNAL_SERVER_ERROR without details.
"""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from cadenza.application.accounts import IdentityInvalid
from cadenza.application.agent_definitions import AgentConflict, AgentError, AgentNotFound
from cadenza.application.definitions import InputsInvalid
from cadenza.application.identity import AuthError, Forbidden
from cadenza.application.ports_api import DefinitionConflict, IdentityConflict
from cadenza.application.quotas import QuotaExceeded
from cadenza.domain.errors import Conflict, DefinitionInvalid, InvalidTransition, NotFound
from cadenza.interfaces.api.graphql.cost import QueryTooCostly
from cadenza.interfaces.api.problems import RateLimited

log = logging.getLogger(__name__)


class BadInput(ValueError):
    """An argument out of its range; the message says which and why."""


# first match wins: subclasses before their bases
_CODES: list[tuple[type[Exception], str, int]] = [
    (AuthError, "UNAUTHENTICATED", 401),
    (Forbidden, "FORBIDDEN", 403),
    (NotFound, "NOT_FOUND", 404),
    (AgentNotFound, "NOT_FOUND", 404),
    (AgentConflict, "CONFLICT", 409),
    (Conflict, "CONFLICT", 409),
    (InvalidTransition, "CONFLICT", 409),
    (DefinitionConflict, "CONFLICT", 409),
    (IdentityConflict, "CONFLICT", 409),
    (DefinitionInvalid, "BAD_USER_INPUT", 422),
    (InputsInvalid, "BAD_USER_INPUT", 422),
    (IdentityInvalid, "BAD_USER_INPUT", 422),
    (AgentError, "BAD_USER_INPUT", 422),
    (BadInput, "BAD_USER_INPUT", 422),
    (RateLimited, "RATE_LIMITED", 429),
    (QuotaExceeded, "QUOTA_EXCEEDED", 429),
    (QueryTooCostly, "QUERY_TOO_COSTLY", 422),
]
_INTERNAL = "an unexpected error occurred; it has been logged"


def _code(exc: BaseException) -> tuple[str, int] | None:
    for cls, code, status in _CODES:
        if isinstance(exc, cls):
            return code, status
    return None


def _from_graphql_machinery(exc: BaseException) -> bool:
    """Errors strawberry or graphql-core raise about the request itself (an operation type
    not allowed, a variable of the wrong type) say what is wrong and stay as they are."""
    return type(exc).__module__.split(".")[0] in ("strawberry", "graphql")


def _unexpected(error: GraphQLError) -> bool:
    exc = error.original_error
    return (
        exc is not None
        and not isinstance(exc, GraphQLError)
        and _code(exc) is None
        and not _from_graphql_machinery(exc)
    )


def _extensions(exc: BaseException, code: str, status: int) -> dict[str, object]:
    out: dict[str, object] = {"code": code, "status": status}
    if isinstance(exc, DefinitionInvalid):
        out["problems"] = [{"path": p.path, "message": p.message} for p in exc.problems]
    elif isinstance(exc, InputsInvalid):
        out["problems"] = [{"path": f"inputs{p}", "message": m} for p, m in exc.problems]
    elif isinstance(exc, RateLimited):
        out["retryAfter"] = max(1, round(exc.retry_after_s + 0.5))
    return out


class ErrorCodes(MaskErrors):
    """Rewrites every error raised by a resolver (queries, mutations and subscriptions)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=self._rewrites, error_message=_INTERNAL)

    @staticmethod
    def _rewrites(error: GraphQLError) -> bool:
        exc = error.original_error
        return exc is not None and (_code(exc) is not None or _unexpected(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        exc = error.original_error
        assert exc is not None
        found = _code(exc)
        code, status = found or ("INTERNAL_SERVER_ERROR", 500)
        return GraphQLError(
            str(exc) if found else _INTERNAL,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=_extensions(exc, code, status),
        )


class Schema(strawberry.Schema):
    """Logs only what is unexpected: an application error is the caller's business."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if _unexpected(error):
                log.error("GraphQL resolver failed: %s", error, exc_info=error.original_error)
