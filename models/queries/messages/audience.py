"""The audience of a mailing and the rules on waiting messages: re-target, cancel, expire,
window changes, and clients edited or deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise import BaseDBAsyncClient

from models import clock
from models.audience import ClientFilter
from models.db import execute, fetch, insert_counting
from models.queries.counters import (
    count_finalised,
    count_finalised_rows,
    count_new_pending,
    count_revived,
    count_revived_rows,
    new_pending_sql,
)
from models.queries.messages.shared import (
    OPTED_OUT_REASON,
    client_matches_mailing,
    id_list,
    waiting,
)
from models.status import MessageStatus

__all__ = [
    "add_audience",
    "add_audience_chunk",
    "cancel_client_waiting",
    "cancel_opted_out_waiting",
    "cancel_unmatched",
    "finalise_waiting",
    "follow_client_edit",
    "follow_client_match",
    "opted_out_left_out",
    "replan_window_waiters",
    "revive_rematched",
]


async def add_audience(
    conn: BaseDBAsyncClient,
    mailing_id: int,
    client_filter: ClientFilter,
    due_at: datetime,
    now: datetime,
    clients: tuple[int, int] | None = None,
) -> int:
    """Create a pending message, due at ``due_at``, for every matching client that has none.

    ``clients`` ``(after, upto)`` limits it to the clients with
    ``after < id <= upto``: one chunk of an audience built in chunks.
    One ``INSERT ... SELECT`` run by the database: idempotent, thanks to the
    unique (mailing, client) pair, and no client row ever travels to Python.
    """
    where, params = client_filter.where(4)
    if clients is not None:
        first = 4 + len(params)
        where += f" AND c.id > ${first} AND c.id <= ${first + 1}"
        params = [*params, *clients]
    added = await insert_counting(
        conn,
        "INSERT INTO message (mailing_id, client_id, phone, timezone, status, attempts,"
        " next_attempt_at, waits_for_window, created_at)"
        " SELECT $1, c.id, c.phone, c.timezone, 'PENDING', 0, $2, FALSE, $3"
        f" FROM client c WHERE c.opted_out_at IS NULL AND {where}"
        " ON CONFLICT (mailing_id, client_id) DO NOTHING",
        mailing_id,
        due_at,
        now,
        *params,
    )
    await count_new_pending(conn, mailing_id, added)
    return added


async def add_audience_chunk(
    conn: BaseDBAsyncClient, mailing_id: int, size: int, now: datetime
) -> tuple[int, bool, float] | None:
    """PostgreSQL: the next chunk of the mailing's audience build, in one statement.

    Locks the mailing row, adds the messages of the next ``size`` client ids
    after ``audience_cursor`` (none past ``audience_until``), counts them and
    moves the cursor (null when done), all at once: no lock is held while a
    busy worker gets round to its next statement. Returns how many messages
    were added, whether the build goes on and the seconds the database spent
    on it (a busy worker's own clock would count its own waits too); ``None``
    when the mailing has no build that may go on (built, re-targeted since,
    cancelled, deleted).
    """
    rows = await fetch(
        conn,
        "WITH g AS (SELECT id, start_at, filter_operator_codes, filter_tags,"
        " audience_cursor AS after, LEAST(audience_until, audience_cursor + $2) AS upto,"
        " audience_until AS until FROM mailing WHERE id = $1 AND audience_cursor IS NOT NULL"
        " AND audience_version = filter_version AND deleted_at IS NULL"
        " AND status IN ('SCHEDULED', 'RUNNING', 'PAUSED') FOR UPDATE),"
        " added AS (INSERT INTO message (mailing_id, client_id, phone, timezone, status,"
        " attempts, next_attempt_at, waits_for_window, created_at)"
        " SELECT g.id, c.id, c.phone, c.timezone, 'PENDING', 0, g.start_at, FALSE, $3"
        " FROM g JOIN client c ON c.id > g.after AND c.id <= g.upto"
        f" WHERE {client_matches_mailing(conn)}"
        " ON CONFLICT (mailing_id, client_id) DO NOTHING RETURNING 1),"
        " n AS (SELECT COUNT(*) AS n FROM added),"
        f" counted AS ({new_pending_sql('(SELECT id FROM g)', '(SELECT n FROM n)')}),"
        " moved AS (UPDATE mailing SET audience_cursor ="
        " CASE WHEN g.upto >= g.until THEN NULL ELSE g.upto END"
        " FROM g WHERE mailing.id = g.id RETURNING mailing.audience_cursor AS cursor)"
        " SELECT n.n AS added, m.cursor IS NULL AS done,"
        " EXTRACT(EPOCH FROM clock_timestamp() - statement_timestamp()) AS seconds"
        " FROM n, moved m",
        mailing_id,
        size,
        now,
    )
    if not rows:
        return None
    return int(rows[0]["added"]), not rows[0]["done"], float(rows[0]["seconds"])


async def cancel_unmatched(
    conn: BaseDBAsyncClient, mailing_id: int, client_filter: ClientFilter
) -> int:
    """Cancel the waiting messages of clients that no longer match (or are gone)."""
    where, params = client_filter.where(3)
    changed = await execute(
        conn,
        "UPDATE message SET status = 'CANCELLED', leased_until = NULL, leased_by = NULL,"
        " finished_at = $2, last_error = CASE WHEN client_id IS NULL THEN 'client deleted'"
        " ELSE 'client no longer matches' END"
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND {waiting(conn)}"
        " AND (client_id IS NULL OR NOT EXISTS ("
        f"SELECT 1 FROM client c WHERE c.id = message.client_id AND {where}))",
        mailing_id,
        clock.now(),
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
        " last_error = NULL, leased_until = NULL, leased_by = NULL, finished_at = NULL,"
        " phone = (SELECT c.phone FROM client c WHERE c.id = message.client_id),"
        " timezone = (SELECT c.timezone FROM client c WHERE c.id = message.client_id)"
        " WHERE mailing_id = $1 AND status = 'CANCELLED' AND EXISTS ("
        "SELECT 1 FROM client c WHERE c.id = message.client_id AND c.opted_out_at IS NULL"
        f" AND {where})",
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
        " leased_until = NULL, leased_by = NULL, finished_at = $3"
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND {waiting(conn)}",
        mailing_id,
        reason,
        clock.now(),
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

    A message a worker holds is left to it; when it is handed back, it has
    no client any more and :func:`finalise_handed_back` cancels it.
    """
    rows = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = 'client deleted',"
        " leased_until = NULL, leased_by = NULL, finished_at = $2"
        f" WHERE client_id = $1 AND status = 'PENDING' AND {waiting(conn)}"
        " RETURNING mailing_id",
        client_id,
        clock.now(),
    )
    await count_finalised_rows(conn, rows, MessageStatus.CANCELLED)
    return len(rows)


async def cancel_opted_out_waiting(conn: BaseDBAsyncClient, client_ids: Sequence[int]) -> int:
    """Cancel the waiting messages of clients who just opted out, at once.

    A message a worker holds is left to it: when it is handed back,
    :func:`finalise_handed_back` cancels it, since an opted-out client matches no
    mailing.
    """
    if not client_ids:
        return 0
    in_ids, ids_param = id_list(conn, client_ids, 1)
    rows = await fetch(
        conn,
        f"UPDATE message SET status = 'CANCELLED', last_error = '{OPTED_OUT_REASON}',"
        " leased_until = NULL, leased_by = NULL, finished_at = $2"
        f" WHERE client_id {in_ids} AND status = 'PENDING' AND {waiting(conn)}"
        " RETURNING mailing_id",
        ids_param,
        clock.now(),
    )
    await count_finalised_rows(conn, rows, MessageStatus.CANCELLED)
    return len(rows)


async def opted_out_left_out(conn: BaseDBAsyncClient, mailing_ids: Sequence[int]) -> dict[int, int]:
    """For each mailing, the opted-out clients its filter matches that it sent nothing to.

    They were left out of its audience, or their waiting message was
    cancelled when they opted out; one who opted out after the message went
    is not counted.
    """
    if not mailing_ids:
        return {}
    in_ids, ids_param = id_list(conn, mailing_ids, 1)
    matches = client_matches_mailing(conn, subscribed=False)
    rows = await fetch(
        conn,
        "SELECT g.id AS mailing_id, COUNT(c.id) AS n FROM mailing g JOIN client c"
        f" ON c.opted_out_at IS NOT NULL AND {matches}"
        f" WHERE g.id {in_ids} AND NOT EXISTS (SELECT 1 FROM message m"
        " WHERE m.mailing_id = g.id AND m.client_id = c.id AND m.status IN ('SENT', 'FAILED'))"
        " GROUP BY g.id",
        ids_param,
    )
    return {int(r["mailing_id"]): int(r["n"]) for r in rows}


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
        " leased_until = NULL, leased_by = NULL, finished_at = $2 FROM mailing g, client c"
        f" WHERE message.client_id = $1 AND message.status = 'PENDING' AND {waiting(conn)}"
        f" AND g.id = message.mailing_id AND c.id = message.client_id AND NOT ({matches})"
        " RETURNING message.mailing_id",
        client_id,
        now,
    )
    await count_finalised_rows(conn, dropped, MessageStatus.CANCELLED)
    revived = await fetch(
        conn,
        "UPDATE message SET status = 'PENDING', next_attempt_at = $2, waits_for_window = FALSE,"
        " last_error = NULL, finished_at = NULL FROM mailing g, client c"
        " WHERE message.client_id = $1 AND message.status = 'CANCELLED'"
        " AND g.id = message.mailing_id AND g.deleted_at IS NULL"
        " AND g.status IN ('SCHEDULED', 'RUNNING', 'PAUSED')"
        f" AND c.id = message.client_id AND {matches}"
        " RETURNING message.mailing_id",
        client_id,
        now,
    )
    await count_revived_rows(conn, revived)
