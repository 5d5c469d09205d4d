"""What every resolver gets in ``info.context``: the request and its batch loaders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

import models
from graphql_api.principal import OPEN, Principal
from models.db import connection
from models.queries.messages import opted_out_left_out

__all__ = ["Context", "Info", "Loaders", "make_loaders"]


async def _load_stats(mailing_ids: list[int]) -> Sequence[models.MailingStats | None]:
    rows = await models.MailingStats.filter(mailing_id__in=mailing_ids)
    by_id = {row.mailing_id: row for row in rows}  # type: ignore[attr-defined]
    return [by_id.get(mailing_id) for mailing_id in mailing_ids]


async def _load_clients(client_ids: list[int]) -> Sequence[models.Client | None]:
    rows = await models.Client.filter(id__in=client_ids)
    by_id = {row.id: row for row in rows}
    return [by_id.get(client_id) for client_id in client_ids]


async def _load_opted_out(mailing_ids: list[int]) -> Sequence[int]:
    left_out = await opted_out_left_out(connection(), mailing_ids)
    return [left_out.get(mailing_id, 0) for mailing_id in mailing_ids]


@dataclass(frozen=True, slots=True)
class Loaders:
    """One query for all the rows a response needs: mailings' counters, messages' clients."""

    stats: DataLoader[int, models.MailingStats | None]
    clients: DataLoader[int, models.Client | None]
    # How many matching clients each mailing left out because they opted out.
    opted_out: DataLoader[int, int]


def make_loaders(*, cache: bool = True) -> Loaders:
    """Fresh loaders; a WebSocket connection lives long, so it gets uncached ones."""
    return Loaders(
        stats=DataLoader(_load_stats, cache=cache),
        clients=DataLoader(_load_clients, cache=cache),
        opted_out=DataLoader(_load_opted_out, cache=cache),
    )


@dataclass
class Context:
    """The request (or WebSocket), its caller, and the batch loaders of this request or connection.

    Strawberry stores the payload of a WebSocket ``connection_init`` in
    ``connection_params`` before it asks the view whether to accept it.
    """

    request: Request | WebSocket
    response: Response | WebSocket
    loaders: Loaders
    connection_params: dict[str, object] = field(default_factory=dict)
    # Who is calling: set from the request's credentials, or at connection_init.
    principal: Principal = OPEN


Info = strawberry.Info[Context, None]
