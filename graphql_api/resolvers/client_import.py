"""``importClients``: up to 10,000 clients a call, all or nothing, at bulk speed.

Each row is checked with the same rules as ``createClient``
(``graphql_api.cleaning.clean_import``); ``models.services.import_clients``
finds existing phones with one query and adds the rows with one statement.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from graphql_api.cleaning import clean_import
from graphql_api.decorators import described_mutation
from graphql_api.inputs import ClientInput
from graphql_api.results import ImportResult, ImportSummary, maps_errors
from models import services

__all__ = ["ClientImportMutation"]


@strawberry.type
class ClientImportMutation:
    @described_mutation(
        "Add up to 10,000 clients at once, all or nothing: each row follows `createClient`'s "
        "rules, and phones must be new and distinct. Answers an `ImportSummary`, or a "
        "`ValidationError` whose fields name the rows (`input.17.phone`, from 0); nothing is "
        "added then."
    )
    @maps_errors
    async def import_clients(
        self,
        input: Annotated[
            list[ClientInput],
            strawberry.argument(
                description="The clients, at most 10,000; an empty list adds none."
            ),
        ],
    ) -> ImportResult:
        return ImportSummary(created=await services.import_clients(clean_import(input)))
