"""``node`` and ``nodes``: any object by its global id (Relay's Global Object Identification).

The id says the type (``graphql_api.ids``); an id that names nothing is null,
as in every query. Deleted mailings, and their messages, are not found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import strawberry
from graphql import GraphQLError

import models
from graphql_api.decorators import described_field
from graphql_api.error_codes import ErrorCode
from graphql_api.ids import Kind, decode
from graphql_api.pagination import MAX_PAGE_SIZE
from graphql_api.types import Client, Mailing, Message, Node
from models.services import live_mailings

__all__ = ["NodeQuery", "load_nodes"]

Loader = Callable[[list[int]], Awaitable[dict[int, Node]]]


async def _clients(keys: list[int]) -> dict[int, Node]:
    return {row.id: Client.from_row(row) for row in await models.Client.filter(id__in=keys)}


async def _mailings(keys: list[int]) -> dict[int, Node]:
    return {row.id: Mailing.from_row(row) for row in await live_mailings().filter(id__in=keys)}


async def _messages(keys: list[int]) -> dict[int, Node]:
    rows = await models.Message.filter(id__in=keys, mailing__deleted_at__isnull=True)
    return {row.id: Message.from_row(row) for row in rows}


_LOADERS: dict[Kind, Loader] = {
    Kind.CLIENT: _clients,
    Kind.MAILING: _mailings,
    Kind.MESSAGE: _messages,
}


async def load_nodes(ids: Sequence[str]) -> list[Node | None]:
    """The object each id names, in order; one query per type whatever the number of ids."""
    named = [decode(value) for value in ids]
    wanted: defaultdict[Kind, set[int]] = defaultdict(set)
    for found in named:
        if found is not None:
            wanted[found[0]].add(found[1])
    loaded = {kind: await _LOADERS[kind](sorted(keys)) for kind, keys in wanted.items()}
    return [None if found is None else loaded[found[0]].get(found[1]) for found in named]


@strawberry.type
class NodeQuery:
    @described_field(
        "Any object by its id (`Client`, `Mailing`, `Message`); null if there is none, it was "
        "deleted, or the id names nothing. Relay refetches through it. Only the opaque ids "
        'name a type: an integer key of the first release ("42") is null here.'
    )
    async def node(
        self,
        id: Annotated[
            strawberry.ID, strawberry.argument(description="An id, as an object's `id` gives it.")
        ],
    ) -> Node | None:
        return (await load_nodes([id]))[0]

    @described_field(
        f"Several objects by their ids, at most {MAX_PAGE_SIZE}, in the order asked; null "
        "for each id that names nothing, as `node` answers."
    )
    async def nodes(
        self,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description=f"The ids, at most {MAX_PAGE_SIZE}."),
        ],
    ) -> list[Node | None]:
        if len(ids) > MAX_PAGE_SIZE:
            raise GraphQLError(
                f"`ids` may hold at most {MAX_PAGE_SIZE} ids, not {len(ids)}",
                extensions={"code": str(ErrorCode.BAD_USER_INPUT)},
            )
        return await load_nodes(ids)
