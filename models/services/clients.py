"""The client directory: create, change, delete and import clients.

A phone is unique: checked before the write (so the answer names the field)
and again by the database (another request may take it meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from tortoise import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from models import clock
from models.client import Client
from models.db import connection, retried
from models.errors import FieldProblem, InvalidInput, NotFound
from models.queries.clients import follow_stop_list, insert_clients, stop_phones, taken_phones
from models.queries.messages import (
    cancel_client_waiting,
    cancel_opted_out_waiting,
    follow_client_edit,
    follow_client_match,
)
from models.services.audit import client_fields, record
from models.validation import default_operator_code

__all__ = [
    "MAX_IMPORT_ROWS",
    "ClientChanges",
    "ClientFields",
    "ImportRows",
    "create_client",
    "delete_client",
    "import_clients",
    "phone_taken",
    "raise_listed",
    "update_client",
]

MAX_IMPORT_ROWS = 10_000
# A response listing 10,000 problems helps nobody; the count says how many.
MAX_LISTED_PROBLEMS = 100

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ClientFields:
    """A new client, every field checked."""

    phone: str
    operator_code: str
    tag: str
    timezone: str
    # Put the phone on the stop list (an import's opted-out column).
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class ImportRows:
    """``importClients``' rows once checked, before the database is asked about their phones.

    ``clients`` are the rows when every one is valid (otherwise empty);
    ``phones`` every well-formed phone by row index, rows with other problems
    included, so that a phone already in use is named in the same answer as
    every other problem; ``problems`` what was found without the database.
    """

    clients: list[ClientFields]
    phones: dict[int, str]
    problems: list[FieldProblem]


# The fields a patch sets; ``operator_code: None`` means "derive it from the phone".
ClientChanges = dict[str, str | None]


def phone_taken(field: str) -> FieldProblem:
    return FieldProblem(field, "already in use by another client")


async def _check_phone_free(conn: BaseDBAsyncClient, phone: str) -> None:
    if await Client.filter(phone=phone).using_db(conn).exists():
        raise InvalidInput([phone_taken("input.phone")])


@retried("create client")
async def create_client(fields: ClientFields) -> Client:
    async with in_transaction() as conn:
        await _check_phone_free(conn, fields.phone)
        try:
            row = await Client.create(
                using_db=conn,
                phone=fields.phone,
                operator_code=fields.operator_code,
                tag=fields.tag,
                timezone=fields.timezone,
            )
        except IntegrityError:  # another request took the phone since the check
            raise InvalidInput([phone_taken("input.phone")]) from None
        if fields.opted_out:
            await stop_phones(conn, [fields.phone], clock.now())
        if await follow_stop_list(conn, [fields.phone]):
            await row.refresh_from_db(using_db=conn)
        await record(conn, "createClient", "client", row.id, None, client_fields(row))
    log.info("client created", client_id=row.id)
    return row


@retried("update client")
async def update_client(client_id: int, changes: ClientChanges) -> Client:
    async with in_transaction() as conn:
        row = await Client.filter(id=client_id).using_db(conn).select_for_update().first()
        if row is None:
            raise NotFound("client", client_id)
        if not changes:
            return row
        before = client_fields(row)
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
            raise InvalidInput([phone_taken("input.phone")]) from None
        await follow_client_edit(conn, row.id, row.phone, row.timezone)
        if phone != old_phone:
            # The new phone may be on the stop list, or the old one was.
            if await follow_stop_list(conn, [old_phone, phone]):
                await cancel_opted_out_waiting(conn, [row.id])
            await row.refresh_from_db(using_db=conn)
        if "tag" in changes or "operator_code" in changes:
            await follow_client_match(conn, row.id, clock.now())
        await record(conn, "updateClient", "client", row.id, before, client_fields(row))
    log.info("client updated", client_id=row.id, fields=sorted(changes))
    return row


@retried("delete client")
async def delete_client(client_id: int) -> int:
    """Delete a client; its pending messages are cancelled, its sent history kept."""
    async with in_transaction() as conn:
        row = await Client.filter(id=client_id).using_db(conn).select_for_update().first()
        if row is None:
            raise NotFound("client", client_id)
        cancelled = await cancel_client_waiting(conn, client_id)
        await Client.filter(id=client_id).using_db(conn).delete()
        await record(conn, "deleteClient", "client", client_id, client_fields(row), None)
    log.info("client deleted", client_id=client_id, cancelled_messages=cancelled)
    return client_id


_FIELD_ORDER = {"phone": 0, "operatorCode": 1, "tag": 2, "timezone": 3}


def _place(problem: FieldProblem) -> tuple[int, int]:
    """Where a problem of ``input.17.phone`` goes in a report: by row, then by column."""
    parts = problem.field.split(".")
    row = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    return row, _FIELD_ORDER.get(parts[-1], len(_FIELD_ORDER))


def raise_listed(problems: list[FieldProblem]) -> None:
    """Refuse an import for ``problems`` (if any), in row order, listing the first hundred."""
    if not problems:
        return
    problems = sorted(problems, key=_place)
    total, rows = len(problems), len({_place(problem)[0] for problem in problems})
    message = (
        f"{total} problem{'s' if total > 1 else ''} in {rows} row{'s' if rows > 1 else ''};"
        " nothing was imported"
    )
    if total > MAX_LISTED_PROBLEMS:
        message += f" (the first {MAX_LISTED_PROBLEMS} are listed)"
    raise InvalidInput(problems[:MAX_LISTED_PROBLEMS], message)


def _taken(phones: dict[int, str], taken: set[str]) -> list[FieldProblem]:
    return [
        phone_taken(f"input.{index}.phone") for index, phone in phones.items() if phone in taken
    ]


@retried("import clients")
async def import_clients(rows: ImportRows) -> int:
    """Add every row as a client, or none of them; returns how many were added.

    A refusal names every problem of every row at once: the rules of each
    field, a phone repeated in the call, a phone already in use.
    """
    if rows.problems:
        taken = await taken_phones(connection(), sorted(set(rows.phones.values())))
        raise_listed([*rows.problems, *_taken(rows.phones, taken)])
    cleaned = rows.clients
    if not cleaned:
        return 0
    phones = [c.phone for c in cleaned]
    by_row = dict(enumerate(phones))
    values = [(c.phone, c.operator_code, c.tag, c.timezone) for c in cleaned]
    try:
        async with in_transaction() as conn:
            raise_listed(_taken(by_row, await taken_phones(conn, phones)))
            now = datetime.now(UTC)
            created = await insert_clients(conn, values, now)
            await stop_phones(conn, [c.phone for c in cleaned if c.opted_out], now)
            # New clients have no messages yet: nothing to cancel.
            await follow_stop_list(conn, phones)
            await record(
                conn, "importClients", "client", "", None, {"created": created, "phones": phones}
            )
    except IntegrityError:
        # Another request added some of these phones since the check; say which.
        raise_listed(_taken(by_row, await taken_phones(connection(), phones)))
        raise
    log.info("clients imported", created=created)
    return created
