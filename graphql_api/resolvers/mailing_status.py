"""``pauseMailing``, ``resumeMailing``, ``cancelMailing`` and ``deleteMailing``.

The rules and the compare-and-set are ``models.services.mailing_status``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

import models
from graphql_api import wake
from graphql_api.decorators import described_mutation
from graphql_api.results import (
    ConflictError,
    Deleted,
    DeleteResult,
    MailingResult,
    NotFoundError,
    ValidationError,
)
from graphql_api.scalars import find_id, parse_id
from graphql_api.types import Mailing
from models import services

__all__ = ["MailingStatusMutation"]

Change = Callable[[int, services.Wake], Awaitable[models.Mailing]]


async def _answer(id_: strawberry.ID, change: Change) -> MailingResult:
    try:
        return Mailing.from_row(await change(parse_id(id_), wake.tend_mailing))
    except models.InvalidInput as error:
        return ValidationError.from_error(error)
    except models.NotFound:
        return NotFoundError(message=f"mailing {id_} not found", id=id_)
    except models.Conflict as error:
        return ConflictError.from_error(error)


@strawberry.type
class MailingStatusMutation:
    @described_mutation("Cancel what is pending and hide the mailing; its history is kept.")
    async def delete_mailing(self, id: strawberry.ID) -> DeleteResult:
        mailing_id = find_id(id)
        try:
            if mailing_id is None:
                raise models.NotFound("mailing", id)
            await services.delete_mailing(mailing_id, wake.tend_mailing)
        except models.NotFound:
            return NotFoundError(message=f"mailing {id} not found", id=id)
        return Deleted(id=strawberry.ID(str(mailing_id)))

    @described_mutation("Stop sending within a second; resumeMailing continues.")
    async def pause_mailing(self, id: strawberry.ID) -> MailingResult:
        return await _answer(id, services.pause_mailing)

    @described_mutation("Continue a paused mailing.")
    async def resume_mailing(self, id: strawberry.ID) -> MailingResult:
        return await _answer(id, services.resume_mailing)

    @described_mutation("Stop for good: pending messages become CANCELLED.")
    async def cancel_mailing(self, id: strawberry.ID) -> MailingResult:
        return await _answer(id, services.cancel_mailing)
