"""``importClients``: up to 10,000 clients a call, all or nothing, at bulk speed.

Each row is checked with the same rules as ``createClient``; existing phones
are found with one query; the rows go in with one statement on PostgreSQL
(``INSERT ... SELECT FROM unnest(...)``) and one ``executemany`` on SQLite.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import strawberry
import structlog
from tortoise import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

import models
from graphql_api.cleaning import ClientFields, Problems, clean_client
from graphql_api.clients import phone_taken
from graphql_api.decorators import described_mutation
from graphql_api.inputs import ClientInput
from graphql_api.results import ImportResult, ImportSummary, ValidationError
from models.db import connection, execute_many, fetch, insert_counting, is_postgres

__all__ = ["MAX_IMPORT_ROWS", "ClientImportMutation", "import_clients"]

MAX_IMPORT_ROWS = 10_000
# A response listing 10,000 problems helps nobody; the count says how many.
MAX_LISTED_PROBLEMS = 100

log = structlog.get_logger(__name__)


def _clean_rows(rows: list[ClientInput]) -> list[ClientFields]:
    problems = Problems()
    cleaned: list[ClientFields] = []
    first_row_of: dict[str, int] = {}
    for index, row in enumerate(rows):
        fields = clean_client(row, f"input.{index}", problems)
        if fields is None:
            continue
        earlier = first_row_of.setdefault(fields.phone, index)
        if earlier != index:
            problems.add(f"input.{index}.phone", f"repeats the phone of input.{earlier}")
        cleaned.append(fields)
    _raise(problems)
    return cleaned


def _raise(problems: Problems) -> None:
    if not problems.found:
        return
    total = len(problems.found)
    message = f"{total} invalid field{'s' if total > 1 else ''}; nothing was imported"
    if total > MAX_LISTED_PROBLEMS:
        message += f" (the first {MAX_LISTED_PROBLEMS} are listed)"
    raise models.InvalidInput(problems.found[:MAX_LISTED_PROBLEMS], message)


async def _taken_phones(conn: BaseDBAsyncClient, phones: list[str]) -> set[str]:
    if is_postgres(conn):
        rows = await fetch(conn, "SELECT phone FROM client WHERE phone = ANY($1::text[])", phones)
    else:
        rows = await fetch(
            conn,
            "SELECT phone FROM client WHERE phone IN (SELECT value FROM json_each($1))",
            json.dumps(phones),
        )
    return {str(row["phone"]) for row in rows}


def _raise_taken(cleaned: list[ClientFields], taken: set[str]) -> None:
    problems = Problems()
    for index, fields in enumerate(cleaned):
        if fields.phone in taken:
            problems.found.append(phone_taken(f"input.{index}.phone"))
    _raise(problems)


async def _insert(conn: BaseDBAsyncClient, cleaned: list[ClientFields], now: datetime) -> int:
    if is_postgres(conn):
        return await insert_counting(
            conn,
            "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
            " SELECT u.phone, u.code, u.tag, u.zone, $5, $5"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " AS u(phone, code, tag, zone)",
            [c.phone for c in cleaned],
            [c.operator_code for c in cleaned],
            [c.tag for c in cleaned],
            [c.timezone for c in cleaned],
            now,
        )
    await execute_many(
        conn,
        "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $5)",
        [[c.phone, c.operator_code, c.tag, c.timezone, now] for c in cleaned],
    )
    return len(cleaned)


async def import_clients(rows: list[ClientInput]) -> int:
    """Add every row as a client, or none of them; returns how many were added."""
    if len(rows) > MAX_IMPORT_ROWS:
        raise models.InvalidInput(
            [models.FieldProblem("input", f"must hold at most {MAX_IMPORT_ROWS:,} clients a call")]
        )
    if not rows:
        return 0
    cleaned = _clean_rows(rows)
    phones = [c.phone for c in cleaned]
    try:
        async with in_transaction() as conn:
            _raise_taken(cleaned, await _taken_phones(conn, phones))
            created = await _insert(conn, cleaned, datetime.now(UTC))
    except IntegrityError:
        # Another request added some of these phones since the check; say which.
        _raise_taken(cleaned, await _taken_phones(connection(), phones))
        raise
    log.info("clients imported", created=created)
    return created


@strawberry.type
class ClientImportMutation:
    @described_mutation(
        "Add up to 10,000 clients at once, all or nothing: each row follows `createClient`'s "
        "rules, and phones must be new and distinct. Answers an `ImportSummary`, or a "
        "`ValidationError` whose fields name the rows (`input.17.phone`, from 0); nothing is "
        "added then."
    )
    async def import_clients(
        self,
        input: Annotated[
            list[ClientInput],
            strawberry.argument(
                description="The clients, at most 10,000; an empty list adds none."
            ),
        ],
    ) -> ImportResult:
        try:
            return ImportSummary(created=await import_clients(input))
        except models.InvalidInput as error:
            return ValidationError.from_error(error)
