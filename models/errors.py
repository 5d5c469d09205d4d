"""The one exception hierarchy of the service; the API maps it to result types."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Conflict", "FieldProblem", "InvalidInput", "MailingsError", "NotFound"]


class MailingsError(Exception):
    """Root of every error the service raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one input field; ``field`` is a dotted path (``input.17.phone``)."""

    field: str
    message: str


class InvalidInput(MailingsError):
    """The input breaks the rules of docs/sending.md, "The objects"; nothing was written."""

    def __init__(self, problems: list[FieldProblem], message: str = "Invalid input") -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


class NotFound(MailingsError):
    def __init__(self, kind: str, id_: int | str) -> None:
        super().__init__(f"{kind} {id_} not found")
        self.message = f"{kind} {id_} not found"
        self.kind = kind
        self.id = str(id_)


class Conflict(MailingsError):
    """The request is well formed but the row's state forbids it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
