"""The client directory: ``client``, ``clients`` and the one-client mutations."""

from __future__ import annotations

from typing import Annotated

import strawberry
from graphql import GraphQLError

import models
from graphql_api.arguments import ClientId
from graphql_api.cleaning import (
    MAX_FILTER_VALUES,
    clean_argument,
    clean_client_input,
    clean_client_patch,
)
from graphql_api.decorators import described_field, described_mutation
from graphql_api.ids import Kind, global_id
from graphql_api.inputs import ClientFilterInput, ClientInput, ClientPatch
from graphql_api.pagination import Connection, Paging, connection_field, or_none, paginate
from graphql_api.results import ClientResult, Deleted, DeleteResult, maps_errors
from graphql_api.scalars import key_or_not_found, row_by_id
from graphql_api.types import Client
from models import services
from models.validation import clean_zone_name, refuse_control_characters

__all__ = ["ClientMutation", "ClientQuery"]


@strawberry.type
class ClientQuery:
    @described_field("A client by id; null if there is none.")
    async def client(self, id: ClientId) -> Client | None:
        row = await row_by_id(models.Client.all(), id, Kind.CLIENT)
        return None if row is None else Client.from_row(row)

    @connection_field(
        "Clients, oldest first unless `orderBy` says otherwise; optionally filtered like a "
        "mailing and by `timezone` (an IANA name); `clients(filter: ..., first: 0) "
        "{ totalCount }` counts a mailing's audience."
    )
    async def clients(
        self,
        filter: Annotated[
            ClientFilterInput | None,
            strawberry.argument(
                description="Only the clients a mailing with this filter would reach. A tag or "
                "operator code no client can have matches nothing; a control character is "
                "refused (`BAD_USER_INPUT`)."
            ),
        ] = strawberry.UNSET,
        *,
        page: Paging,
        timezone: Annotated[
            str | None,
            strawberry.argument(
                description="Only clients in this time zone, an IANA name (old aliases too, "
                "which clients made before may have); a name that is no zone is refused "
                "(`BAD_USER_INPUT`), not answered with an empty list."
            ),
        ] = strawberry.UNSET,
        opted_out: Annotated[
            bool | None,
            strawberry.argument(
                description="True: only opted-out clients (`optedOutAt` set); false: only "
                "those who accept messages; left out or null: both."
            ),
        ] = strawberry.UNSET,
    ) -> Connection[Client]:
        query = models.Client.all()
        stopped = or_none(opted_out)
        if stopped is not None:
            query = query.filter(opted_out_at__isnull=not stopped)
        zone = or_none(timezone)
        if zone is not None:
            query = query.filter(timezone=clean_argument("timezone", clean_zone_name, zone))
        client_filter = or_none(filter)
        if client_filter is not None:
            codes, tags = client_filter.operator_codes, client_filter.tags
            if max(len(codes), len(tags)) > MAX_FILTER_VALUES:
                raise GraphQLError(f"a filter holds at most {MAX_FILTER_VALUES} values a list")
            for name, values in (("operatorCodes", codes), ("tags", tags)):
                for index, value in enumerate(values):
                    clean_argument(f"filter.{name}.{index}", refuse_control_characters, value)
            # A value longer than the column matches no client; Tortoise would
            # refuse it, and an empty list matches nothing.
            if codes:
                query = query.filter(operator_code__in=[c for c in codes if len(c) <= 3])
            if tags:
                query = query.filter(tag__in=[t for t in tags if len(t) <= 64])
        return await paginate(query, Client.from_row, page)


@strawberry.type
class ClientMutation:
    @described_mutation(
        "Add a client. Answers the `Client`, or a `ValidationError` naming every field that "
        "breaks the rules (a phone already in use included); nothing is written then. Never "
        "a `NotFoundError` (the result union is shared with `updateClient`)."
    )
    @maps_errors
    async def create_client(
        self, input: Annotated[ClientInput, strawberry.argument(description="The new client.")]
    ) -> ClientResult:
        return Client.from_row(await services.create_client(clean_client_input(input)))

    @described_mutation(
        "Change some fields of a client; its pending messages follow (a new phone or time "
        "zone; a tag or code that no longer matches a running mailing cancels its message "
        "there). Answers the `Client`, a `ValidationError` (nothing is written then), or a "
        "`NotFoundError`."
    )
    @maps_errors
    async def update_client(
        self,
        id: ClientId,
        input: Annotated[ClientPatch, strawberry.argument(description="What to change.")],
    ) -> ClientResult:
        client_id = key_or_not_found(id, Kind.CLIENT)
        row = await services.update_client(client_id, clean_client_patch(input))
        return Client.from_row(row)

    @described_mutation(
        "Delete a client: its pending messages are cancelled; its sent messages stay in the "
        "statistics, with the phone they went to. Answers `Deleted` or a `NotFoundError`."
    )
    @maps_errors
    async def delete_client(self, id: ClientId) -> DeleteResult:
        deleted = await services.delete_client(key_or_not_found(id, Kind.CLIENT))
        return Deleted(id=global_id(Kind.CLIENT, deleted))
