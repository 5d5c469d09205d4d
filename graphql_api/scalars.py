"""The ``DateTime`` scalar, and what an ``ID`` argument names (``graphql_api.ids``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition
from tortoise.models import Model
from tortoise.queryset import QuerySet

from graphql_api.ids import Kind, key_of
from models import NotFound

__all__ = ["SCALAR_MAP", "DateTimeText", "key_or_not_found", "row_by_id"]

RowT = TypeVar("RowT", bound=Model)

DateTimeText = NewType("DateTimeText", str)
"""An input instant exactly as the client wrote it.

The scalar hands input strings over unparsed, and the mutation parses them
(``graphql_api.cleaning.parse_instant``): so a naive or malformed instant is a
``ValidationError`` naming its field, as docs/api.md wants, rather than a
bare GraphQL error raised before any resolver runs.
"""


def _serialize(value: object) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"DateTime cannot represent {type(value).__name__}")
    if value.tzinfo is None:  # pragma: no cover - the database hands out aware instants
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _parse_value(value: object) -> str:
    if not isinstance(value, str):
        raise GraphQLError("DateTime must be a string such as 2026-01-31T09:00:00+03:00")
    return value


_DATETIME: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An instant in ISO 8601 with its UTC offset, e.g. `2026-01-31T09:00:00+03:00`. "
    "Input must carry an offset (`Z` for UTC); the API answers in UTC "
    "(`2026-01-31T06:00:00+00:00`).",
    serialize=_serialize,
    parse_value=_parse_value,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {datetime: _DATETIME, DateTimeText: _DATETIME}


def key_or_not_found(value: str, kind: Kind) -> int:
    """The key of the ``kind`` an ``ID`` argument names; an id that names none is ``NotFound``.

    The one answer of every mutation to an id that names nothing (malformed,
    out of range, another type's): a ``NotFoundError`` naming the id as given.
    """
    key = key_of(value, kind)
    if key is None:
        raise NotFound(kind.lower(), value)
    return key


async def row_by_id(query: QuerySet[RowT], value: str, kind: Kind) -> RowT | None:
    """The row of ``query`` an ``ID`` argument names; ``None`` if there is none, or can be none."""
    key = key_of(value, kind)
    return None if key is None else await query.filter(id=key).first()
