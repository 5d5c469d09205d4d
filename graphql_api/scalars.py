"""The ``DateTime`` scalar, and IDs: integer keys written as strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models import FieldProblem, InvalidInput, NotFound

__all__ = ["SCALAR_MAP", "DateTimeText", "find_id", "id_or_not_found", "parse_id", "row_by_id"]

RowT = TypeVar("RowT", bound=Model)

DateTimeText = NewType("DateTimeText", str)
"""An input instant exactly as the client wrote it.

The scalar hands input strings over unparsed, and the mutation parses them
(``graphql_api.cleaning.parse_instant``): so a naive or malformed instant is a
``ValidationError`` naming its field, as docs/api.md wants, rather than a
bare GraphQL error raised before any resolver runs.
"""

_MAX_ID = 2**63 - 1


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


def find_id(value: str) -> int | None:
    """The integer key an ``ID`` names, or ``None`` when it names nothing that can exist."""
    # isdecimal alone accepts non-ASCII digits; isascii rules them out.
    if not (value.isascii() and value.isdecimal()) or len(value) > 19:
        return None
    key = int(value)
    return key if 0 < key <= _MAX_ID else None


def parse_id(value: str, field: str = "id") -> int:
    """The integer key of an ``ID`` argument; a malformed one is invalid input on ``field``."""
    key = find_id(value)
    if key is None:
        raise InvalidInput([FieldProblem(field, 'must be a positive integer id such as "42"')])
    return key


def id_or_not_found(value: str, kind: str) -> int:
    """The integer key of an ``ID`` argument; a malformed one names no ``kind``: ``NotFound``.

    For the operations whose result union has no ``ValidationError`` (the deletions).
    """
    key = find_id(value)
    if key is None:
        raise NotFound(kind, value)
    return key


async def row_by_id(query: QuerySet[RowT], value: str) -> RowT | None:
    """The row of ``query`` an ``ID`` argument names; ``None`` if there is none, or can be none."""
    key = find_id(value)
    return None if key is None else await query.filter(id=key).first()
