"""SQL on ``client`` that the ORM cannot say at bulk speed (the import), and the stop list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models.db import execute, execute_many, fetch, insert_counting, is_postgres

__all__ = [
    "follow_stop_list",
    "insert_clients",
    "phones_param",
    "stop_phones",
    "taken_phones",
    "unstop_phone",
]

# (phone, operator_code, tag, timezone)
ClientRow = tuple[str, str, str, str]


def phones_param(conn: BaseDBAsyncClient, phones: Sequence[str], param: int) -> tuple[str, Any]:
    """``IN`` over a list of phones passed as one parameter."""
    if is_postgres(conn):
        return f"= ANY(${param}::text[])", list(phones)
    return f"IN (SELECT value FROM json_each(${param}))", json.dumps(list(phones))


async def taken_phones(conn: BaseDBAsyncClient, phones: list[str]) -> set[str]:
    """Which of ``phones`` a client already has, in one query."""
    in_phones, param = phones_param(conn, phones, 1)
    rows = await fetch(conn, f"SELECT phone FROM client WHERE phone {in_phones}", param)
    return {str(row["phone"]) for row in rows}


async def stop_phones(conn: BaseDBAsyncClient, phones: Sequence[str], now: datetime) -> int:
    """Put ``phones`` on the stop list; a phone already there keeps its first date.

    Returns how many were new on it.
    """
    if not phones:
        return 0
    if is_postgres(conn):
        return await insert_counting(
            conn,
            "INSERT INTO opt_out (phone, opted_out_at) SELECT u.phone, $2"
            " FROM unnest($1::text[]) AS u(phone) ON CONFLICT (phone) DO NOTHING",
            list(phones),
            now,
        )
    return await insert_counting(
        conn,
        "INSERT INTO opt_out (phone, opted_out_at) SELECT value, $2 FROM json_each($1)"
        " WHERE true ON CONFLICT (phone) DO NOTHING",
        json.dumps(list(phones)),
        now,
    )


async def unstop_phone(conn: BaseDBAsyncClient, phone: str) -> None:
    """Take ``phone`` off the stop list."""
    await execute(conn, "DELETE FROM opt_out WHERE phone = $1", phone)


async def follow_stop_list(conn: BaseDBAsyncClient, phones: Sequence[str]) -> list[int]:
    """Clients with one of ``phones`` take its stop-list state; returns the ids just opted out.

    Called after anything that puts a phone on or off the list, or gives a
    client a phone (create, import, a new phone).
    """
    if not phones:
        return []
    in_phones, param = phones_param(conn, phones, 1)
    await execute(
        conn,
        "UPDATE client SET opted_out_at = NULL WHERE opted_out_at IS NOT NULL"
        f" AND phone {in_phones}"
        " AND NOT EXISTS (SELECT 1 FROM opt_out o WHERE o.phone = client.phone)",
        param,
    )
    rows = await fetch(
        conn,
        "UPDATE client SET opted_out_at = o.opted_out_at FROM opt_out o"
        " WHERE o.phone = client.phone AND client.opted_out_at IS NULL"
        f" AND client.phone {in_phones}"
        " RETURNING client.id",
        param,
    )
    return [int(row["id"]) for row in rows]


async def insert_clients(conn: BaseDBAsyncClient, rows: Sequence[ClientRow], now: datetime) -> int:
    """One statement on PostgreSQL (``unnest``), one ``executemany`` on SQLite."""
    if is_postgres(conn):
        return await insert_counting(
            conn,
            "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
            " SELECT u.phone, u.code, u.tag, u.zone, $5, $5"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " AS u(phone, code, tag, zone)",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            now,
        )
    await execute_many(
        conn,
        "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $5)",
        [[*r, now] for r in rows],
    )
    return len(rows)
