"""Domain errors: each says what went wrong and where."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidTransition(DomainError):
    pass


@dataclass(frozen=True)
class Problem:
    """One validation problem: a JSON path into the document and the reason."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DefinitionInvalid(DomainError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"definition is invalid ({len(problems)} problem(s)):\n{lines}")


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    """The operation does not fit the current state (e.g. approving a finished task)."""
