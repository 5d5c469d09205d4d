"""How a client's edits and deletion reach its pending messages."""

from __future__ import annotations

from datetime import datetime

from tortoise import BaseDBAsyncClient

from models.counters import count_finalised_rows
from models.db import execute, fetch
from models.status import MessageStatus

__all__ = ["cancel_client_pending", "follow_client_edit"]


async def cancel_client_pending(conn: BaseDBAsyncClient, client_id: int, now: datetime) -> int:
    """Cancel the client's pending messages before the client is deleted.

    A message a worker holds right now (its lease ends after ``now``) is left
    to that worker, which records what the provider said; if it comes back
    pending, the engine cancels it, since it no longer has a client.
    """
    rows = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = 'client deleted'"
        " WHERE client_id = $1 AND status = 'PENDING' AND next_attempt_at <= $2"
        " RETURNING mailing_id",
        client_id,
        now,
    )
    await count_finalised_rows(conn, rows, MessageStatus.CANCELLED)
    return len(rows)


async def follow_client_edit(
    conn: BaseDBAsyncClient, client_id: int, phone: str, timezone: str
) -> int:
    """Pending messages go to the client's current phone, in its current time zone."""
    return await execute(
        conn,
        "UPDATE message SET phone = $2, timezone = $3 WHERE client_id = $1 AND status = 'PENDING'",
        client_id,
        phone,
        timezone,
    )
