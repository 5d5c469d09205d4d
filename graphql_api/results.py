"""Expected errors as data: the members of the mutations' result unions (docs/api.md).

:func:`maps_errors` is the one place where ``models.errors`` become them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast, get_args, get_type_hints

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
    "OptOutResult",
    "OptOutSummary",
    "ValidationError",
    "maps_errors",
]

ResolverT = TypeVar("ResolverT", bound=Callable[..., Awaitable[Any]])


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
    description="Nothing of the expected type has this id: there never was, it was deleted, "
    "or the id cannot name one (malformed, out of range, another type's id). Every mutation "
    "that takes an id answers this, the same way; a query answers null."
)
class NotFoundError(Error):
    id: strawberry.ID = strawberry.field(description="The id as it was given.")

    @classmethod
    def from_error(cls, error: models.NotFound, given: str | None = None) -> NotFoundError:
        """``given``: the id as the caller wrote it (``"042"``), named instead of the key."""
        if given is not None:
            error = models.NotFound(error.kind, given)
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


@strawberry.type(description="What `optOutClients` did.")
class OptOutSummary:
    listed: int = strawberry.field(description="How many of the phones were new on the stop list.")
    clients: list[Client] = strawberry.field(
        description="The clients with those phones, now opted out, oldest first."
    )
    cancelled_messages: int = strawberry.field(
        description="How many of their waiting messages were CANCELLED."
    )


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


OptOutResult = Annotated[
    OptOutSummary | ValidationError,
    strawberry.union("OptOutResult", description="What the opt-out did, or why it did nothing."),
]


def maps_errors(resolver: ResolverT) -> ResolverT:
    """A mutation that answers the expected errors (``models.errors``) as its union's members.

    An error whose type the union lacks goes on, to be masked and logged as
    unexpected. A ``NotFoundError`` names the ``id`` argument as it was given.
    """

    @functools.cache
    def members() -> tuple[object, ...]:
        # Read on the first error, once every name the annotations use exists.
        union = get_type_hints(resolver, include_extras=True)["return"]
        return get_args(get_args(union)[0])

    @functools.wraps(resolver)
    async def resolve(*args: Any, **kwargs: Any) -> Any:
        try:
            return await resolver(*args, **kwargs)
        except models.MailingsError as error:
            answer = _as_member(error, kwargs.get("id"))
            if type(answer) not in members():
                raise
            return answer

    return cast("ResolverT", resolve)


def _as_member(error: models.MailingsError, given_id: str | None) -> Error | None:
    if isinstance(error, models.InvalidInput):
        return ValidationError.from_error(error)
    if isinstance(error, models.NotFound):
        return NotFoundError.from_error(error, given_id)
    if isinstance(error, models.Conflict):
        return ConflictError.from_error(error)
    return None
