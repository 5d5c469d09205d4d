"""The audience of a mailing and the rules on waiting messages: re-target, cancel, expire,
window changes, and clients edited or deleted."""

from __future__ import annotations

from datetime import datetime

from tortoise import BaseDBAsyncClient

from models.audience import ClientFilter
from models.db import execute, fetch, insert_counting
from models.queries.counters import (
    count_finalised,
    count_finalised_rows,
    count_new_pending,
    count_revived,
    count_revived_rows,
)
from models.queries.messages.shared import client_matches_mailing, waiting
from models.status import MessageStatus

__all__ = [
    "add_audience",
    "cancel_client_waiting",
    "cancel_unmatched",
    "finalise_waiting",
    "follow_client_edit",
    "follow_client_match",
    "replan_window_waiters",
    "revive_rematched",
]


async def add_audience(
    conn: BaseDBAsyncClient,
    mailing_id: int,
    client_filter: ClientFilter,
    due_at: datetime,
    now: datetime,
) -> int:
    """Create a pending message, due at ``due_at``, for every matching client that has none.

    One ``INSERT ... SELECT`` run by the database: idempotent, thanks to the
    unique (mailing, client) pair, and no client row ever travels to Python.
    """
    where, params = client_filter.where(4)
    added = await insert_counting(
        conn,
        "INSERT INTO message (mailing_id, client_id, phone, timezone, status, attempts,"
        " next_attempt_at, waits_for_window, created_at)"
        " SELECT $1, c.id, c.phone, c.timezone, 'PENDING', 0, $2, FALSE, $3"
        f" FROM client c WHERE {where}"
        " ON CONFLICT (mailing_id, client_id) DO NOTHING",
        mailing_id,
        due_at,
        now,
        *params,
    )
    await count_new_pending(conn, mailing_id, added)
    return added


async def cancel_unmatched(
    conn: BaseDBAsyncClient, mailing_id: int, client_filter: ClientFilter
) -> int:
    """Cancel the waiting messages of clients that no longer match (or are gone)."""
    where, params = client_filter.where(2)
    changed = await execute(
        conn,
        "UPDATE message SET status = 'CANCELLED', leased_until = NULL, leased_by = NULL,"
        " last_error = CASE WHEN client_id IS NULL THEN 'client deleted'"
        " ELSE 'client no longer matches' END"
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND {waiting(conn)}"
        " AND (client_id IS NULL OR NOT EXISTS ("
        f"SELECT 1 FROM client c WHERE c.id = message.client_id AND {where}))",
        mailing_id,
        *params,
    )
    await count_finalised(conn, mailing_id, MessageStatus.CANCELLED, changed)
    return changed


async def revive_rematched(
    conn: BaseDBAsyncClient, mailing_id: int, client_filter: ClientFilter, now: datetime
) -> int:
    """Give a client that matches again its message back (it was cancelled, so never sent).

    In a mailing that is not itself cancelled, a cancelled message that still
    has its client was cancelled by re-targeting; it comes back under its own
    id (a retry of an earlier attempt stays recognisable to the provider), to
    the client's current phone and time zone.
    """
    where, params = client_filter.where(3)
    changed = await execute(
        conn,
        "UPDATE message SET status = 'PENDING', next_attempt_at = $2, waits_for_window = FALSE,"
        " last_error = NULL, leased_until = NULL, leased_by = NULL,"
        " phone = (SELECT c.phone FROM client c WHERE c.id = message.client_id),"
        " timezone = (SELECT c.timezone FROM client c WHERE c.id = message.client_id)"
        " WHERE mailing_id = $1 AND status = 'CANCELLED' AND EXISTS ("
        f"SELECT 1 FROM client c WHERE c.id = message.client_id AND {where})",
        mailing_id,
        now,
        *params,
    )
    await count_revived(conn, mailing_id, changed)
    return changed


async def finalise_waiting(
    conn: BaseDBAsyncClient, mailing_id: int, status: MessageStatus, reason: str
) -> int:
    """Move every waiting message of the mailing to ``status`` (cancel, delete, expiry)."""
    changed = await execute(
        conn,
        f"UPDATE message SET status = '{status.value}', last_error = COALESCE(last_error, $2),"
        " leased_until = NULL, leased_by = NULL"
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND {waiting(conn)}",
        mailing_id,
        reason,
    )
    await count_finalised(conn, mailing_id, status, changed)
    return changed


async def replan_window_waiters(conn: BaseDBAsyncClient, mailing_id: int, now: datetime) -> int:
    """The window changed: messages parked for the old one are due now, to be planned anew."""
    return await execute(
        conn,
        "UPDATE message SET next_attempt_at = $2, waits_for_window = FALSE"
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND waits_for_window AND {waiting(conn)}",
        mailing_id,
        now,
    )


# -- clients --------------------------------------------------------------------


async def cancel_client_waiting(conn: BaseDBAsyncClient, client_id: int) -> int:
    """Cancel the client's waiting messages before the client is deleted.

    A message a worker holds is left to it; if it comes back unsent, it has
    no client any more and :func:`settle_returned` cancels it.
    """
    rows = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = 'client deleted',"
        " leased_until = NULL, leased_by = NULL"
        f" WHERE client_id = $1 AND status = 'PENDING' AND {waiting(conn)}"
        " RETURNING mailing_id",
        client_id,
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


async def follow_client_match(conn: BaseDBAsyncClient, client_id: int, now: datetime) -> None:
    """The client's tag or operator code changed: its messages follow the filters of their mailings.

    A message goes out only to a client its mailing's filter matches when the
    request starts (the claim checks it), so a client edited out of a filter
    has its waiting messages cancelled now, and one edited back in gets a
    message cancelled that way again. It adds no mailing the client was not
    in at its start: re-targeting a mailing does that.
    """
    matches = client_matches_mailing(conn)
    dropped = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = 'client no longer matches',"
        " leased_until = NULL, leased_by = NULL FROM mailing g, client c"
        f" WHERE message.client_id = $1 AND message.status = 'PENDING' AND {waiting(conn)}"
        f" AND g.id = message.mailing_id AND c.id = message.client_id AND NOT ({matches})"
        " RETURNING message.mailing_id",
        client_id,
    )
    await count_finalised_rows(conn, dropped, MessageStatus.CANCELLED)
    revived = await fetch(
        conn,
        "UPDATE message SET status = 'PENDING', next_attempt_at = $2, waits_for_window = FALSE,"
        " last_error = NULL FROM mailing g, client c"
        " WHERE message.client_id = $1 AND message.status = 'CANCELLED'"
        " AND g.id = message.mailing_id AND g.deleted_at IS NULL"
        " AND g.status IN ('SCHEDULED', 'RUNNING', 'PAUSED')"
        f" AND c.id = message.client_id AND {matches}"
        " RETURNING message.mailing_id",
        client_id,
        now,
    )
    await count_revived_rows(conn, revived)
