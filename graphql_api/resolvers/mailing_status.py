"""``pauseMailing``, ``resumeMailing``, ``cancelMailing`` and ``deleteMailing``.

The rules and the compare-and-set are ``models.services.mailing_status``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

import models
from graphql_api import wake
from graphql_api.arguments import MailingId
from graphql_api.decorators import described_mutation
from graphql_api.ids import Kind, global_id
from graphql_api.results import Deleted, DeleteResult, MailingResult, maps_errors
from graphql_api.scalars import key_or_not_found
from graphql_api.types import Mailing
from models import services

__all__ = ["MailingStatusMutation"]

Change = Callable[[int, services.Wake], Awaitable[models.Mailing]]


async def _changed(id_: strawberry.ID, change: Change) -> Mailing:
    return Mailing.from_row(await change(key_or_not_found(id_, Kind.MAILING), wake.tend_mailing))


@strawberry.type
class MailingStatusMutation:
    @described_mutation(
        "Delete a mailing: what is pending is cancelled (as by `cancelMailing`) and the "
        "mailing disappears from every query, list and statistic; its rows are kept. Answers "
        "`Deleted` or a `NotFoundError`."
    )
    @maps_errors
    async def delete_mailing(self, id: MailingId) -> DeleteResult:
        mailing_id = key_or_not_found(id, Kind.MAILING)
        await services.delete_mailing(mailing_id, wake.tend_mailing)
        return Deleted(id=global_id(Kind.MAILING, mailing_id))

    @described_mutation(
        "Hold a mailing: no new request to the provider starts after about a second; requests "
        "in flight keep their outcome, and `endAt` still applies. `resumeMailing` continues. "
        "Answers the `Mailing` (PAUSED; unchanged if it already was), a `ConflictError` for "
        "a FINISHED or CANCELLED one, or a `NotFoundError`; never a `ValidationError` (the "
        "result union is shared)."
    )
    @maps_errors
    async def pause_mailing(self, id: MailingId) -> MailingResult:
        return await _changed(id, services.pause_mailing)

    @described_mutation(
        "Continue a paused mailing: RUNNING again, or SCHEDULED if it had not started. Answers "
        "the `Mailing` (unchanged if it was not paused), a `ConflictError` for a FINISHED or "
        "CANCELLED one, or a `NotFoundError`; never a `ValidationError` (the result union is "
        "shared)."
    )
    @maps_errors
    async def resume_mailing(self, id: MailingId) -> MailingResult:
        return await _changed(id, services.resume_mailing)

    @described_mutation(
        "Stop a mailing for good: its pending messages become CANCELLED at once; requests in "
        "flight keep their outcome. Answers the `Mailing` (CANCELLED; unchanged if it already "
        "was), a `ConflictError` for a FINISHED one, or a "
        "`NotFoundError`; never a `ValidationError` (the result union is shared)."
    )
    @maps_errors
    async def cancel_mailing(self, id: MailingId) -> MailingResult:
        return await _changed(id, services.cancel_mailing)
