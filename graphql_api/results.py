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
        description="The path of the field: `input.phone`, `input.17.phone` (row 17 of an "
        "import, from 0), `input.filter.tags.0`, `id`."
    )
    message: str = strawberry.field(
        description="What is wrong with it, to show next to the field: `must be 11 digits "
        "starting with 7 (7XXXXXXXXXX)`."
    )


@strawberry.type(
    description="The input breaks the rules; nothing was written. Every problem found is "
    "listed, not just the first."
)
class ValidationError(Error):
    errors: list[FieldError] = strawberry.field(
        description="Each problem, by field; at most 100 for an import (`message` says how "
        "many there are)."
    )

    @classmethod
    def from_error(cls, error: models.InvalidInput) -> ValidationError:
        return cls(
            message=error.message,
            errors=[FieldError(field=p.field, message=p.message) for p in error.problems],
        )


@strawberry.type(
    description="Nothing with this id exists: there never was, or it was deleted. (An id "
    "that cannot name anything, not a positive 64-bit integer, is a `NotFoundError` where "
    "the union has no `ValidationError`, as for the deletions.)"
)
class NotFoundError(Error):
    id: strawberry.ID = strawberry.field(description="The id as it was given.")

    @classmethod
    def from_error(cls, error: models.NotFound) -> NotFoundError:
        return cls(message=error.message, id=strawberry.ID(error.id))


@strawberry.type(
    description="The request is well formed, but the record's state forbids it: editing, "
    "pausing or resuming a FINISHED or CANCELLED mailing, cancelling a FINISHED one. Nothing "
    "was written."
)
class ConflictError(Error):
    @classmethod
    def from_error(cls, error: models.Conflict) -> ConflictError:
        return cls(message=error.message)


@strawberry.type(description="The record was deleted.")
class Deleted:
    id: strawberry.ID = strawberry.field(description="The id of what was deleted.")


@strawberry.type(description="An import that went through, all of it.")
class ImportSummary:
    created: int = strawberry.field(description="How many clients the import added.")


ClientResult = Annotated[
    Client | ValidationError | NotFoundError,
    strawberry.union("ClientResult", description="The client as saved, or why not."),
]
MailingResult = Annotated[
    Mailing | ValidationError | NotFoundError | ConflictError,
    strawberry.union("MailingResult", description="The mailing as it is now, or why not."),
]
DeleteResult = Annotated[
    Deleted | NotFoundError,
    strawberry.union("DeleteResult", description="What was deleted, or that it was not found."),
]
ImportResult = Annotated[
    ImportSummary | ValidationError,
    strawberry.union("ImportResult", description="How many clients were added, or why none."),
]
