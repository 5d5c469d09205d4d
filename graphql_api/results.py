"""Expected errors as data: the members of the mutations' result unions (SPEC section 2)."""

from __future__ import annotations

from typing import Annotated

import strawberry

import models
from graphql_api.types import Client, Mailing

__all__ = [
    "ClientResult",
    "ConflictError",
    "DeleteResult",
    "Deleted",
    "Error",
    "FieldError",
    "ImportResult",
    "ImportSummary",
    "MailingResult",
    "NotFoundError",
    "ValidationError",
]


@strawberry.interface(
    description="What every expected error has: a message for people. Select "
    "`... on Error { message }` to handle any error of a result union at once, "
    "and the concrete type for its details."
)
class Error:
    message: str = strawberry.field(
        description="What went wrong, in plain words, fit to show to the user."
    )


@strawberry.type(description="One thing wrong with one input field.")
class FieldError:
    field: str = strawberry.field(
        description="The path of the field: `input.phone`, `input.17.phone`, `id`."
    )
    message: str


@strawberry.type(description="The input breaks the rules; nothing was written.")
class ValidationError(Error):
    errors: list[FieldError]

    @classmethod
    def from_error(cls, error: models.InvalidInput) -> ValidationError:
        return cls(
            message=error.message,
            errors=[FieldError(field=p.field, message=p.message) for p in error.problems],
        )


@strawberry.type(description="Nothing with this id exists (or it was deleted).")
class NotFoundError(Error):
    id: strawberry.ID

    @classmethod
    def from_error(cls, error: models.NotFound) -> NotFoundError:
        return cls(message=error.message, id=strawberry.ID(error.id))


@strawberry.type(description="The request is well formed, but the record's state forbids it.")
class ConflictError(Error):
    @classmethod
    def from_error(cls, error: models.Conflict) -> ConflictError:
        return cls(message=error.message)


@strawberry.type
class Deleted:
    id: strawberry.ID


@strawberry.type
class ImportSummary:
    created: int = strawberry.field(description="How many clients the import added.")


ClientResult = Annotated[Client | ValidationError | NotFoundError, strawberry.union("ClientResult")]
MailingResult = Annotated[
    Mailing | ValidationError | NotFoundError | ConflictError, strawberry.union("MailingResult")
]
DeleteResult = Annotated[Deleted | NotFoundError, strawberry.union("DeleteResult")]
ImportResult = Annotated[ImportSummary | ValidationError, strawberry.union("ImportResult")]
