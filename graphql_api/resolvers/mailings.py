"""Mailings: ``mailing``, ``mailings``, ``createMailing`` and ``updateMailing``."""

from __future__ import annotations

import strawberry

import models
from graphql_api import wake
from graphql_api.cleaning import clean_mailing, clean_mailing_patch
from graphql_api.decorators import described_field, described_mutation
from graphql_api.inputs import MailingInput, MailingPatch
from graphql_api.pagination import Connection, build_connection, keyset_page, or_none
from graphql_api.results import (
    ConflictError,
    MailingResult,
    NotFoundError,
    ValidationError,
)
from graphql_api.scalars import find_id, parse_id
from graphql_api.types import Mailing, MailingStatus
from models import services
from models.services import live_mailings

__all__ = ["MailingMutation", "MailingQuery"]


@strawberry.type
class MailingQuery:
    @described_field("A mailing by id; null if there is none or it was deleted.")
    async def mailing(self, id: strawberry.ID) -> Mailing | None:
        key = find_id(id)
        row = None if key is None else await live_mailings().filter(id=key).first()
        return None if row is None else Mailing.from_row(row)

    @described_field("Mailings in id order, optionally of one status.")
    async def mailings(
        self,
        status: MailingStatus | None = strawberry.UNSET,
        first: int | None = strawberry.UNSET,
        after: str | None = strawberry.UNSET,
    ) -> Connection[Mailing]:
        query = live_mailings(or_none(status))
        rows, has_next = await keyset_page(query, first, after)

        async def count() -> int:
            return await query.count()

        return build_connection(rows, has_next, Mailing.from_row, count, after)


@strawberry.type
class MailingMutation:
    @described_mutation("Create a mailing; it starts by itself at startAt.")
    async def create_mailing(self, input: MailingInput) -> MailingResult:
        try:
            row = await services.create_mailing(clean_mailing(input), wake.tend_mailing)
            return Mailing.from_row(row)
        except models.InvalidInput as error:
            return ValidationError.from_error(error)

    @described_mutation(
        "Change what is not sent yet; a FINISHED or CANCELLED mailing is a conflict."
    )
    async def update_mailing(self, id: strawberry.ID, input: MailingPatch) -> MailingResult:
        try:
            mailing_id = parse_id(id)
            changes = clean_mailing_patch(input)
            row = await services.update_mailing(mailing_id, changes, wake.tend_mailing)
            return Mailing.from_row(row)
        except models.InvalidInput as error:
            return ValidationError.from_error(error)
        except models.NotFound:
            return NotFoundError(message=f"mailing {id} not found", id=id)
        except models.Conflict as error:
            return ConflictError.from_error(error)
