"""``importClients``: up to 10,000 clients a call, all or nothing, at bulk speed.

Each row is checked with the same rules as ``createClient``
(``graphql_api.cleaning.clean_import``); ``models.services.import_clients``
finds existing phones with one query and adds the rows with one statement.
"""

from __future__ import annotations

import strawberry

import models
from graphql_api.cleaning import clean_import
from graphql_api.decorators import described_mutation
from graphql_api.inputs import ClientInput
from graphql_api.results import ImportResult, ImportSummary, ValidationError
from models import services

__all__ = ["ClientImportMutation"]


@strawberry.type
class ClientImportMutation:
    @described_mutation(
        "Add up to 10,000 clients at once, all or nothing; "
        "a problem names its row (`input.17.phone`)."
    )
    async def import_clients(self, input: list[ClientInput]) -> ImportResult:
        try:
            return ImportSummary(created=await services.import_clients(clean_import(input)))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)
