"""Mailings: ``mailing``, ``mailings``, ``createMailing`` and ``updateMailing``."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graphql_api import wake
from graphql_api.arguments import MailingId, MailingStatusFilter
from graphql_api.cleaning import clean_mailing, clean_mailing_patch
from graphql_api.decorators import described_field, described_mutation
from graphql_api.ids import Kind
from graphql_api.inputs import MailingInput, MailingPatch
from graphql_api.pagination import Connection, Paging, connection_field, or_none, paginate
from graphql_api.results import MailingResult, maps_errors
from graphql_api.scalars import key_or_not_found, row_by_id
from graphql_api.types import Mailing
from models import services
from models.services import live_mailings

__all__ = ["MailingMutation", "MailingQuery"]


@strawberry.type
class MailingQuery:
    @described_field("A mailing by id; null if there is none or it was deleted.")
    async def mailing(self, id: MailingId) -> Mailing | None:
        row = await row_by_id(live_mailings(), id, Kind.MAILING)
        return None if row is None else Mailing.from_row(row)

    @connection_field(
        "Mailings, optionally of one status, oldest first unless `orderBy` says otherwise."
    )
    async def mailings(
        self, status: MailingStatusFilter = strawberry.UNSET, *, page: Paging
    ) -> Connection[Mailing]:
        return await paginate(live_mailings(or_none(status)), Mailing.from_row, page)


@strawberry.type
class MailingMutation:
    @described_mutation(
        "Create a mailing; it starts by itself at `startAt` (within about a second if that "
        "has passed), even across restarts. Answers the `Mailing`, SCHEDULED, or a "
        "`ValidationError` naming every field that breaks the rules; nothing is written then. "
        "Never a `NotFoundError` or `ConflictError` (the result union is shared)."
    )
    @maps_errors
    async def create_mailing(
        self, input: Annotated[MailingInput, strawberry.argument(description="The new mailing.")]
    ) -> MailingResult:
        row = await services.create_mailing(clean_mailing(input), wake.tend_mailing)
        return Mailing.from_row(row)

    @described_mutation(
        "Change a mailing; what is not sent yet follows at once (see `MailingPatch`), what is "
        "sent stays. Answers the `Mailing`, a `ValidationError`, a `NotFoundError`, or a "
        "`ConflictError` for a FINISHED or CANCELLED mailing; nothing is written on an error."
    )
    @maps_errors
    async def update_mailing(
        self,
        id: MailingId,
        input: Annotated[MailingPatch, strawberry.argument(description="What to change.")],
    ) -> MailingResult:
        mailing_id = key_or_not_found(id, Kind.MAILING)
        changes = clean_mailing_patch(input)
        row = await services.update_mailing(mailing_id, changes, wake.tend_mailing)
        return Mailing.from_row(row)
