"""The client directory: ``client``, ``clients`` and the one-client mutations."""

from __future__ import annotations

from typing import Annotated

import strawberry
import structlog
from graphql import GraphQLError
from tortoise import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

import models
from graphql_api.arguments import ClientId
from graphql_api.cleaning import (
    MAX_FILTER_VALUES,
    Problems,
    clean_argument,
    clean_client,
    clean_client_patch,
)
from graphql_api.decorators import described_field, described_mutation
from graphql_api.inputs import ClientFilterInput, ClientInput, ClientPatch
from graphql_api.pagination import After, Connection, First, build_connection, keyset_page, or_none
from graphql_api.results import ClientResult, Deleted, DeleteResult, NotFoundError, ValidationError
from graphql_api.scalars import find_id, parse_id
from graphql_api.types import Client
from models import clock
from models.queries.messages import (
    cancel_client_waiting,
    follow_client_edit,
    follow_client_match,
)
from models.validation import clean_zone_name, default_operator_code, refuse_control_characters

__all__ = [
    "ClientMutation",
    "ClientQuery",
    "create_client",
    "delete_client",
    "phone_taken",
    "update_client",
]

log = structlog.get_logger(__name__)


def phone_taken(field: str) -> models.FieldProblem:
    return models.FieldProblem(field, "already in use by another client")


async def _check_phone_free(conn: BaseDBAsyncClient, phone: str) -> None:
    if await models.Client.filter(phone=phone).using_db(conn).exists():
        raise models.InvalidInput([phone_taken("input.phone")])


async def create_client(value: ClientInput) -> models.Client:
    problems = Problems()
    fields = clean_client(value, "input", problems)
    problems.raise_any()
    assert fields is not None
    async with in_transaction() as conn:
        await _check_phone_free(conn, fields.phone)
        try:
            row = await models.Client.create(
                using_db=conn,
                phone=fields.phone,
                operator_code=fields.operator_code,
                tag=fields.tag,
                timezone=fields.timezone,
            )
        except IntegrityError:  # another request took the phone since the check
            raise models.InvalidInput([phone_taken("input.phone")]) from None
    log.info("client created", client_id=row.id)
    return row


async def update_client(id_: str, patch: ClientPatch) -> models.Client:
    client_id = parse_id(id_)
    changes = clean_client_patch(patch)
    async with in_transaction() as conn:
        row = await models.Client.filter(id=client_id).using_db(conn).select_for_update().first()
        if row is None:
            raise models.NotFound("client", id_)
        if not changes:
            return row
        old_phone = row.phone
        phone = changes.get("phone") or old_phone
        if phone != old_phone:
            await _check_phone_free(conn, phone)
        if "operator_code" in changes:
            row.operator_code = changes["operator_code"] or default_operator_code(phone)
        elif row.operator_code == default_operator_code(old_phone):
            # A code that was derived from the phone follows the phone.
            row.operator_code = default_operator_code(phone)
        row.phone = phone
        row.tag = changes.get("tag", row.tag) or ""
        row.timezone = changes.get("timezone", row.timezone) or "UTC"
        try:
            await row.save(using_db=conn)
        except IntegrityError:
            raise models.InvalidInput([phone_taken("input.phone")]) from None
        await follow_client_edit(conn, row.id, row.phone, row.timezone)
        if "tag" in changes or "operator_code" in changes:
            await follow_client_match(conn, row.id, clock.now())
    log.info("client updated", client_id=row.id, fields=sorted(changes))
    return row


async def delete_client(id_: str) -> int:
    """Delete a client; its pending messages are cancelled, its sent history kept."""
    client_id = find_id(id_)
    if client_id is None:
        raise models.NotFound("client", id_)
    async with in_transaction() as conn:
        row = await models.Client.filter(id=client_id).using_db(conn).select_for_update().first()
        if row is None:
            raise models.NotFound("client", id_)
        cancelled = await cancel_client_waiting(conn, client_id)
        await models.Client.filter(id=client_id).using_db(conn).delete()
    log.info("client deleted", client_id=client_id, cancelled_messages=cancelled)
    return client_id


@strawberry.type
class ClientQuery:
    @described_field("A client by id; null if there is none.")
    async def client(self, id: ClientId) -> Client | None:
        key = find_id(id)
        row = None if key is None else await models.Client.get_or_none(id=key)
        return None if row is None else Client.from_row(row)

    @described_field(
        "Clients in id order, optionally filtered like a mailing and by `timezone`; "
        "`clients(filter: ..., first: 0) { totalCount }` counts a mailing's audience."
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
        first: First = strawberry.UNSET,
        after: After = strawberry.UNSET,
        timezone: Annotated[
            str | None,
            strawberry.argument(
                description="Only clients in this time zone, an IANA name (old aliases too, "
                "which clients made before may have); a name that is no zone is refused "
                "(`BAD_USER_INPUT`), not answered with an empty list."
            ),
        ] = strawberry.UNSET,
    ) -> Connection[Client]:
        query = models.Client.all()
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
        rows, has_next = await keyset_page(query, first, after)

        async def count() -> int:
            return await query.count()

        return build_connection(rows, has_next, Client.from_row, count, after)


@strawberry.type
class ClientMutation:
    @described_mutation(
        "Add a client. Answers the `Client`, or a `ValidationError` naming every field that "
        "breaks the rules (a phone already in use included); nothing is written then. Never "
        "a `NotFoundError` (the result union is shared with `updateClient`)."
    )
    async def create_client(
        self, input: Annotated[ClientInput, strawberry.argument(description="The new client.")]
    ) -> ClientResult:
        try:
            return Client.from_row(await create_client(input))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)

    @described_mutation(
        "Change some fields of a client; its pending messages follow (a new phone or time "
        "zone; a tag or code that no longer matches a running mailing cancels its message "
        "there). Answers the `Client`, a `ValidationError` (nothing is written then), or a "
        "`NotFoundError`."
    )
    async def update_client(
        self,
        id: ClientId,
        input: Annotated[ClientPatch, strawberry.argument(description="What to change.")],
    ) -> ClientResult:
        try:
            return Client.from_row(await update_client(id, input))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)
        except models.NotFound as error:
            return NotFoundError.from_error(error)

    @described_mutation(
        "Delete a client: its pending messages are cancelled; its sent messages stay in the "
        "statistics, with the phone they went to. Answers `Deleted` or a `NotFoundError`."
    )
    async def delete_client(self, id: ClientId) -> DeleteResult:
        try:
            return Deleted(id=strawberry.ID(str(await delete_client(id))))
        except models.NotFound as error:
            return NotFoundError.from_error(error)
