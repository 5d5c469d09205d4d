"""Relay cursor connections, paged by key (``WHERE id > $after``), never by OFFSET."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.types.unset import UnsetType
from tortoise.models import Model
from tortoise.queryset import QuerySet

from graphql_api.decorators import described_field
from graphql_api.scalars import find_id

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "After",
    "Connection",
    "Edge",
    "First",
    "PageInfo",
    "build_connection",
    "decode_cursor",
    "encode_cursor",
    "keyset_page",
    "or_none",
    "page_size",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT", bound=Model)
ValueT = TypeVar("ValueT")


def or_none(value: ValueT | None) -> ValueT | None:
    """An optional argument left out (``UNSET``) reads as ``None``."""
    return None if isinstance(value, UnsetType) else value


First = Annotated[
    int | None,
    strawberry.argument(
        description=f"At most this many items, from the start or from `after`: 0 to "
        f"{MAX_PAGE_SIZE} (more is cut to {MAX_PAGE_SIZE}); {DEFAULT_PAGE_SIZE} when left out. "
        "`first: 0` answers only `totalCount`."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(description="Only items after this cursor (a page's `endCursor`)."),
]


@strawberry.type(description="Where a page sits; pass `endCursor` as `after` for the next one.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(
        description="`after` was given, so items may precede this page."
    )
    start_cursor: str | None = strawberry.field(
        description="The first edge's cursor; null when the page has no edges."
    )
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor; null when the page has no edges."
    )


@strawberry.type(description="One item of a page, with its cursor.")
class Edge(Generic[NodeT]):
    cursor: str = strawberry.field(
        description="An opaque position: pass it as `after` to continue past this item."
    )
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, in id order.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(description="This page's items, in order.")
    page_info: PageInfo = strawberry.field(description="Where this page sits in the list.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @described_field("How many items the whole list holds, across all pages.")
    async def total_count(self) -> int:
        # Counted only when asked for: a COUNT can cost more than the page.
        return await self.count()


def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(str(key).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        key = find_id(base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii"))
    except (UnicodeError, binascii.Error):
        key = None
    if key is None:
        raise GraphQLError(f"`after` is not a cursor from this API: {cursor!r}")
    return key


def page_size(first: int | None) -> int:
    """``first``, defaulted and capped; a negative ``first`` is a mistake worth saying."""
    first = or_none(first)
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise GraphQLError("`first` must not be negative")
    return min(first, MAX_PAGE_SIZE)


async def keyset_page(
    query: QuerySet[RowT], first: int | None, after: str | None
) -> tuple[list[RowT], bool]:
    """The rows of one page, and whether more follow it."""
    size = page_size(first)
    after = or_none(after)
    if after is not None:
        query = query.filter(id__gt=decode_cursor(after))
    rows = await query.order_by("id").limit(size + 1)
    return rows[:size], len(rows) > size


def build_connection(
    rows: Sequence[RowT],
    has_next: bool,
    to_node: Callable[[RowT], NodeT],
    count: Callable[[], Awaitable[int]],
    after: str | None,
) -> Connection[NodeT]:
    edges = [Edge(cursor=encode_cursor(row.pk), node=to_node(row)) for row in rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=or_none(after) is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )
