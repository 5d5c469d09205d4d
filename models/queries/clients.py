"""SQL on ``client`` that the ORM cannot say at bulk speed (the import)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from tortoise import BaseDBAsyncClient

from models.db import execute_many, fetch, insert_counting, is_postgres

__all__ = ["insert_clients", "taken_phones"]

# (phone, operator_code, tag, timezone)
ClientRow = tuple[str, str, str, str]


async def taken_phones(conn: BaseDBAsyncClient, phones: list[str]) -> set[str]:
    """Which of ``phones`` a client already has, in one query."""
    if is_postgres(conn):
        rows = await fetch(conn, "SELECT phone FROM client WHERE phone = ANY($1::text[])", phones)
    else:
        rows = await fetch(
            conn,
            "SELECT phone FROM client WHERE phone IN (SELECT value FROM json_each($1))",
            json.dumps(phones),
        )
    return {str(row["phone"]) for row in rows}


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
