"""The client directory: ``client``, ``clients`` and the one-client mutations."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError

import models
from graphql_api.cleaning import MAX_FILTER_VALUES, clean_client_input, clean_client_patch
from graphql_api.decorators import described_field, described_mutation
from graphql_api.inputs import ClientFilterInput, ClientInput, ClientPatch
from graphql_api.pagination import Connection, build_connection, keyset_page, or_none
from graphql_api.results import ClientResult, Deleted, DeleteResult, NotFoundError, ValidationError
from graphql_api.scalars import find_id, parse_id
from graphql_api.types import Client
from models import services

__all__ = ["ClientMutation", "ClientQuery"]


@strawberry.type
class ClientQuery:
    @described_field("A client by id; null if there is none.")
    async def client(self, id: strawberry.ID) -> Client | None:
        key = find_id(id)
        row = None if key is None else await models.Client.get_or_none(id=key)
        return None if row is None else Client.from_row(row)

    @described_field(
        "Clients in id order, optionally filtered like a mailing and by `timezone` (an IANA "
        "name); `clients(filter: ..., first: 0) { totalCount }` counts a mailing's audience."
    )
    async def clients(
        self,
        filter: ClientFilterInput | None = strawberry.UNSET,
        first: int | None = strawberry.UNSET,
        after: str | None = strawberry.UNSET,
        timezone: str | None = strawberry.UNSET,
    ) -> Connection[Client]:
        query = models.Client.all()
        zone = or_none(timezone)
        if zone is not None:
            # Longer than the column: no client has it (and Tortoise would refuse it).
            query = query.filter(timezone__in=[zone] if len(zone) <= 64 else [])
        client_filter = or_none(filter)
        if client_filter is not None:
            codes, tags = client_filter.operator_codes, client_filter.tags
            if max(len(codes), len(tags)) > MAX_FILTER_VALUES:
                raise GraphQLError(f"a filter holds at most {MAX_FILTER_VALUES} values a list")
            # A value longer than the column matches no client; Tortoise would
            # refuse it, and an empty list matches nothing.
            if codes:
                query = query.filter(operator_code__in=[c for c in codes if len(c) <= 3])
            if tags:
                query = query.filter(tag__in=[t for t in tags if len(t) <= 64])
        rows, has_next = await keyset_page(query, first, after)

        async def count() -> int:
            return await query.count()

        return build_connection(rows, has_next, Client.from_row, count, after)


@strawberry.type
class ClientMutation:
    @strawberry.mutation
    async def create_client(self, input: ClientInput) -> ClientResult:
        try:
            return Client.from_row(await services.create_client(clean_client_input(input)))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)

    @described_mutation("Change some fields of a client.")
    async def update_client(self, id: strawberry.ID, input: ClientPatch) -> ClientResult:
        try:
            client_id = parse_id(id)
            row = await services.update_client(client_id, clean_client_patch(input))
            return Client.from_row(row)
        except models.InvalidInput as error:
            return ValidationError.from_error(error)
        except models.NotFound:
            return NotFoundError(message=f"client {id} not found", id=id)

    @described_mutation("Delete a client: its pending messages are cancelled.")
    async def delete_client(self, id: strawberry.ID) -> DeleteResult:
        client_id = find_id(id)
        try:
            if client_id is None:
                raise models.NotFound("client", id)
            return Deleted(id=strawberry.ID(str(await services.delete_client(client_id))))
        except models.NotFound:
            return NotFoundError(message=f"client {id} not found", id=id)
