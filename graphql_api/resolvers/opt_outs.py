"""The stop list: ``optOutClients`` and ``optInClient`` (``models.services.opt_outs``)."""

from __future__ import annotations

from typing import Annotated

import strawberry

import models
from graphql_api.arguments import ClientId
from graphql_api.decorators import described_mutation
from graphql_api.ids import Kind
from graphql_api.results import ClientResult, OptOutResult, OptOutSummary, maps_errors
from graphql_api.scalars import key_or_not_found
from graphql_api.types import Client
from models import services
from models.services.clients import MAX_IMPORT_ROWS, raise_listed
from models.validation import clean_phone

__all__ = ["OptOutMutation"]


def _clean_phones(phones: list[str]) -> list[str]:
    if len(phones) > MAX_IMPORT_ROWS:
        raise models.InvalidInput(
            [models.FieldProblem("phones", f"must hold at most {MAX_IMPORT_ROWS:,} phones a call")]
        )
    problems: list[models.FieldProblem] = []
    cleaned: dict[str, None] = {}
    for index, phone in enumerate(phones):
        try:
            cleaned[clean_phone(phone)] = None
        except ValueError as error:
            problems.append(models.FieldProblem(f"phones.{index}", str(error)))
    raise_listed(problems)
    return list(cleaned)


@strawberry.type
class OptOutMutation:
    @described_mutation(
        "Put phones on the stop list: the clients with them (now or created later, even "
        "after a deletion) get no message any more. Their waiting messages are CANCELLED at "
        "once (`lastError` `client opted out`); one already handed to the provider keeps the "
        "provider's answer. A phone no client has is listed all the same; a phone listed "
        "already keeps its first date. Answers an `OptOutSummary`, or a `ValidationError` "
        "naming each bad phone (`phones.3`); nothing is written then."
    )
    @maps_errors
    async def opt_out_clients(
        self,
        phones: Annotated[
            list[str],
            strawberry.argument(
                description="Phones as `Client.phone` spells them (`7XXXXXXXXXX`), at most "
                "10,000; repeats count once."
            ),
        ],
    ) -> OptOutResult:
        outcome = await services.opt_out_phones(_clean_phones(phones))
        return OptOutSummary(
            listed=outcome.listed,
            clients=[Client.from_row(row) for row in outcome.clients],
            cancelled_messages=outcome.cancelled,
        )

    @described_mutation(
        "Take a client's phone off the stop list: it matches mailings again from now on "
        "(messages cancelled when it opted out stay CANCELLED). Answers the `Client`, or a "
        "`NotFoundError`; never a `ValidationError` (the union is shared with `updateClient`)."
    )
    @maps_errors
    async def opt_in_client(self, id: ClientId) -> ClientResult:
        return Client.from_row(await services.opt_in_client(key_or_not_found(id, Kind.CLIENT)))
