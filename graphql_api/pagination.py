"""Relay cursor connections, paged by key both ways, never by OFFSET.

A cursor names one item's key, whatever the order it was read in, so
``after``/``before`` work forwards, backwards and across orders. A page is one
indexed range read (``WHERE id > $after ... ORDER BY id LIMIT n + 1``); the
flags are true statements about the whole list, each at most one more
``LIMIT 1`` read, made only when a cursor leaves them open:

- ``hasNextPage``: items follow the page's last edge; ``hasPreviousPage``:
  items precede its first edge.
- A page without edges has no cursor to go on from; its flags say only
  whether items lie beyond the ``after``/``before`` it was given. So
  ``first: 0`` (or ``last: 0``) counts without looping forever.
- ``first`` and ``last`` together are refused, as are negative sizes and
  sizes over ``MAX_PAGE_SIZE``: a silent cut would look like the end.

A list field is declared with :func:`connection_field` and a ``page: Paging``
parameter: the five paging arguments, each with its one description, stand
there in the schema and reach the resolver as one value.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast

import strawberry
from graphql import GraphQLError
from strawberry.annotation import StrawberryAnnotation
from strawberry.extensions.field_extension import AsyncExtensionResolver, FieldExtension
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UnsetType
from tortoise.models import Model
from tortoise.queryset import QuerySet

from graphql_api.decorators import described_field
from graphql_api.echo import echoed
from graphql_api.ids import legacy_key

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "After",
    "Before",
    "Connection",
    "Edge",
    "First",
    "Last",
    "ListOrder",
    "OrderBy",
    "PageInfo",
    "PageRequest",
    "Paging",
    "connection_field",
    "decode_cursor",
    "encode_cursor",
    "or_none",
    "paginate",
    "requested_size",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

NodeT = TypeVar("NodeT")
RowT = TypeVar("RowT", bound=Model)
ValueT = TypeVar("ValueT")
ResolverT = TypeVar("ResolverT", bound=Callable[..., Awaitable[Any]])


def or_none(value: ValueT | None) -> ValueT | None:
    """An optional argument left out (``UNSET``) reads as ``None``."""
    return None if isinstance(value, UnsetType) else value


@strawberry.enum(description="The order of a list's items, on every page alike.")
class ListOrder(enum.Enum):
    OLDEST_FIRST = strawberry.enum_value(
        "oldest_first", description="In the order the items were created (by id): the default."
    )
    NEWEST_FIRST = strawberry.enum_value(
        "newest_first", description="The most recently created first (by id, descending)."
    )


First = Annotated[
    int | None,
    strawberry.argument(
        description=f"Page forward: at most this many items from the start, or from `after`. "
        f"0 to {MAX_PAGE_SIZE}; {DEFAULT_PAGE_SIZE} when neither `first` nor `last` is given. "
        "Not together with `last`."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(description="Only items after this cursor (a page's `endCursor`)."),
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description=f"Page backward: at most this many items from the end, or before `before`. "
        f"0 to {MAX_PAGE_SIZE}; {DEFAULT_PAGE_SIZE} when only `before` is given. "
        "Not together with `first`."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(description="Only items before this cursor (a page's `startCursor`)."),
]
OrderBy = Annotated[
    ListOrder,
    strawberry.argument(
        description="Which items come first. Cursors name items, not positions: one read in "
        "either order may be passed in the other."
    ),
]


@dataclass(frozen=True, slots=True)
class Paging:
    """A list field's paging arguments as given (null when left out); ``paginate`` checks them."""

    first: int | None
    after: str | None
    last: int | None
    before: str | None
    order_by: ListOrder


# Each argument's type and default, in the schema's order.
_PAGING_ARGUMENTS: dict[str, tuple[object, object]] = {
    "first": (First, strawberry.UNSET),
    "after": (After, strawberry.UNSET),
    "last": (Last, strawberry.UNSET),
    "before": (Before, strawberry.UNSET),
    "order_by": (OrderBy, ListOrder.OLDEST_FIRST),
}


class _PagingArguments(FieldExtension):
    """Puts the paging arguments where the resolver's ``page`` parameter stands."""

    def apply(self, field: StrawberryField) -> None:
        arguments: list[StrawberryArgument] = []
        for argument in field.arguments:
            if argument.python_name != "page":
                arguments.append(argument)
                continue
            arguments.extend(
                StrawberryArgument(
                    python_name=name,
                    graphql_name=None,
                    type_annotation=StrawberryAnnotation(annotation),
                    default=default,
                )
                for name, (annotation, default) in _PAGING_ARGUMENTS.items()
            )
        field.arguments = arguments

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        # Left out: the default, null for the four without one.
        page = Paging(*(kwargs.pop(name, or_none(d)) for name, (_, d) in _PAGING_ARGUMENTS.items()))
        return await next_(source, info, page=page, **kwargs)


def connection_field(description: str) -> Callable[[ResolverT], ResolverT]:
    """A list field: its resolver's ``page: Paging`` parameter is the paging arguments."""
    return cast(
        "Callable[[ResolverT], ResolverT]",
        strawberry.field(description=description, extensions=[_PagingArguments()]),
    )


@strawberry.type(
    description="Where a page sits. Forward: pass `endCursor` as `after` while `hasNextPage`; "
    "backward: pass `startCursor` as `before` while `hasPreviousPage`."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Items follow this page's last edge. A page without edges reports only "
        "items beyond `before`, so `first: 0` never asks a loop to go on."
    )
    has_previous_page: bool = strawberry.field(
        description="Items precede this page's first edge. A page without edges reports only "
        "items before `after`."
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
        description="An opaque position: pass it as `after` or `before` to page on from this item."
    )
    node: NodeT = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, in the order `orderBy` asks for.")
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


def decode_cursor(cursor: str, argument: str = "after") -> int:
    try:
        key = legacy_key(base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii"))
    except (UnicodeError, binascii.Error):
        key = None
    if key is None:
        raise GraphQLError(f"`{argument}` is not a cursor from this API: {echoed(cursor)}")
    return key


def requested_size(first: int | None, last: int | None) -> int:
    """How many items ``first``/``last`` ask for; refuses what cannot be honoured."""
    if first is not None and last is not None:
        raise GraphQLError("Pass `first` (page forward) or `last` (page backward), not both")
    for name, size in (("first", first), ("last", last)):
        if size is None:
            continue
        if size < 0:
            raise GraphQLError(f"`{name}` must not be negative")
        if size > MAX_PAGE_SIZE:
            raise GraphQLError(
                f"`{name}` may be at most {MAX_PAGE_SIZE}, not {size}: "
                f"page through the rest with `{'after' if name == 'first' else 'before'}`"
            )
        return size
    return DEFAULT_PAGE_SIZE


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The paging arguments of one connection field, checked."""

    size: int
    backward: bool  # `last` given, or only `before`: the page ends at the window's end
    after: int | None
    before: int | None
    newest_first: bool

    @classmethod
    def of(cls, paging: Paging) -> PageRequest:
        first, after, last, before = paging.first, paging.after, paging.last, paging.before
        size = requested_size(first, last)
        return cls(
            size=size,
            backward=last is not None or (first is None and before is not None and after is None),
            after=None if after is None else decode_cursor(after, "after"),
            before=None if before is None else decode_cursor(before, "before"),
            newest_first=paging.order_by is ListOrder.NEWEST_FIRST,
        )

    def beyond(self, key: int, *, inclusive: bool = False) -> dict[str, int]:
        """Items that come after ``key`` in this order (``key`` itself too if ``inclusive``)."""
        op = ("lt" if self.newest_first else "gt") + ("e" if inclusive else "")
        return {f"id__{op}": key}

    def ahead_of(self, key: int, *, inclusive: bool = False) -> dict[str, int]:
        """Items that come before ``key`` in this order."""
        op = ("gt" if self.newest_first else "lt") + ("e" if inclusive else "")
        return {f"id__{op}": key}


@dataclass(frozen=True, slots=True)
class _Page(Generic[RowT]):
    rows: Sequence[RowT]
    has_previous: bool
    has_next: bool


async def _page(query: QuerySet[RowT], page: PageRequest) -> _Page[RowT]:
    window = query
    if page.after is not None:
        window = window.filter(**page.beyond(page.after))
    if page.before is not None:
        window = window.filter(**page.ahead_of(page.before))
    forward = "-id" if page.newest_first else "id"
    backward = "id" if page.newest_first else "-id"
    if page.size == 0:
        rows: list[RowT] = []
        more = False
    else:
        read = await window.order_by(backward if page.backward else forward).limit(page.size + 1)
        more = len(read) > page.size
        rows = read[: page.size]
        if page.backward:
            rows.reverse()
    if not rows:
        # No edge to continue from: only what lies beyond the given cursors.
        return _Page(
            rows,
            has_previous=page.after is not None
            and await query.filter(**page.ahead_of(page.after, inclusive=True)).exists(),
            has_next=page.before is not None
            and await query.filter(**page.beyond(page.before, inclusive=True)).exists(),
        )
    first_key, last_key = rows[0].pk, rows[-1].pk
    # The read itself settles the flag on its far side; a cursor on the near
    # side (or a `before` beyond a forward page) leaves it to one more read.
    if page.backward:
        has_previous = more
        has_next = False
    else:
        has_previous = False
        has_next = more
    if not has_previous and page.after is not None:
        has_previous = await query.filter(**page.ahead_of(first_key)).exists()
    if not has_next and page.before is not None:
        has_next = await query.filter(**page.beyond(last_key)).exists()
    return _Page(rows, has_previous=has_previous, has_next=has_next)


async def paginate(
    query: QuerySet[RowT],
    to_node: Callable[[RowT], NodeT],
    paging: Paging,
    *,
    count: Callable[[], Awaitable[int]] | None = None,
) -> Connection[NodeT]:
    """One page of ``query`` as a connection.

    ``count`` answers ``totalCount`` when asked; by default the query's own
    ``COUNT(*)``, for lists whose size no counter keeps.
    """
    page = await _page(query, PageRequest.of(paging))
    edges = [Edge(cursor=encode_cursor(row.pk), node=to_node(row)) for row in page.rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count or query.count,
    )
