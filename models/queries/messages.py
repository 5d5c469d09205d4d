"""Every statement that touches ``message``: one file to read when a rule about messages changes.

A pending message is either *in flight* (a worker holds it: ``leased_until``
is set and has not passed, on the database's clock) or *waiting* (for its
turn, a retry or its window). Rules that act on waiting messages (cancel,
re-target, window changes, expiry at ``end_at``) leave held ones to their
worker, which records what the provider said; :func:`settle_returned` then
applies those rules to what a worker hands back unsent or for a retry.

Every status change is made by a statement guarded by the status it
expects, and the same transaction feeds ``models.counters`` with the rows
it changed, so the counters never drift. Every finalising statement clears
the lease, so ``idx_message_leased`` holds only live claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from tortoise import BaseDBAsyncClient

from models.audience import ClientFilter
from models.counters import (
    count_finalised,
    count_finalised_rows,
    count_new_pending,
    count_revived,
    count_revived_rows,
    new_pending_sql,
)
from models.db import db_clock, execute, fetch, insert_counting, is_postgres
from models.status import MessageStatus

__all__ = [
    "Claimed",
    "Finalise",
    "Reschedule",
    "add_audience",
    "add_audience_chunk",
    "cancel_client_waiting",
    "cancel_unmatched",
    "claim_due",
    "finalise_messages",
    "finalise_waiting",
    "follow_client_edit",
    "follow_client_match",
    "reap_ended_leases",
    "replan_window_waiters",
    "reschedule_messages",
    "revive_rematched",
    "settle_returned",
    "storable",
]

_ERROR_LIMIT = 500  # characters of a reason kept in last_error


def storable(text: str | None, limit: int = _ERROR_LIMIT) -> str | None:
    """Text from outside (a provider's answer) made safe to store anywhere.

    PostgreSQL refuses NUL in text and invalid UTF-8 (a lone surrogate that
    slipped through a decoder); both become U+FFFD, and the length is bounded.
    """
    if text is None:
        return None
    if len(text) > limit:
        text = text[:limit] + "…"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch in "\t " else "\ufffd" for ch in text)
    return text.encode("utf-8", "replace").decode("utf-8")


def _waiting(conn: BaseDBAsyncClient, table: str = "message") -> str:
    """A pending message no live lease holds (a lease whose worker died has ended)."""
    return f"({table}.leased_until IS NULL OR {table}.leased_until <= {db_clock(conn)})"


def _ids(conn: BaseDBAsyncClient, ids: Sequence[int], param: int) -> tuple[str, Any]:
    """``IN`` over a list of ids passed as one parameter."""
    if is_postgres(conn):
        return f"= ANY(${param}::bigint[])", list(ids)
    return f"IN (SELECT value FROM json_each(${param}))", orjson.dumps(list(ids)).decode()


def _client_matches_mailing(conn: BaseDBAsyncClient) -> str:
    """``client c`` matches the current filter of ``mailing g`` (read from the row, not a cache)."""
    if is_postgres(conn):
        return (
            "(jsonb_array_length(g.filter_operator_codes) = 0"
            " OR g.filter_operator_codes @> to_jsonb(c.operator_code::text))"
            " AND (jsonb_array_length(g.filter_tags) = 0 OR g.filter_tags @> to_jsonb(c.tag::text))"
        )
    return (
        "(json_array_length(g.filter_operator_codes) = 0"
        " OR c.operator_code IN (SELECT value FROM json_each(g.filter_operator_codes)))"
        " AND (json_array_length(g.filter_tags) = 0"
        " OR c.tag IN (SELECT value FROM json_each(g.filter_tags)))"
    )


# -- the audience ---------------------------------------------------------------


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
        f" FROM client c WHERE {where}"
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
        f" WHERE {_client_matches_mailing(conn)}"
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
    where, params = client_filter.where(2)
    changed = await execute(
        conn,
        "UPDATE message SET status = 'CANCELLED', leased_until = NULL, leased_by = NULL,"
        " last_error = CASE WHEN client_id IS NULL THEN 'client deleted'"
        " ELSE 'client no longer matches' END"
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND {_waiting(conn)}"
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
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND {_waiting(conn)}",
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
        f" WHERE mailing_id = $1 AND status = 'PENDING' AND waits_for_window AND {_waiting(conn)}",
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
        f" WHERE client_id = $1 AND status = 'PENDING' AND {_waiting(conn)}"
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
    matches = _client_matches_mailing(conn)
    dropped = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = 'client no longer matches',"
        " leased_until = NULL, leased_by = NULL FROM mailing g, client c"
        f" WHERE message.client_id = $1 AND message.status = 'PENDING' AND {_waiting(conn)}"
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


# -- the engine -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    mailing_id: int
    client_id: int
    phone: str
    timezone: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Finalise:
    """Message ``id`` reached a final status; ``error`` is kept as ``last_error``."""

    id: int
    status: MessageStatus
    error: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Reschedule:
    """Message ``id`` goes back to waiting until ``due``.

    ``refund`` undoes the claim's attempt (the provider never considered the
    message); ``for_window`` marks a wait for the window's next opening.
    """

    id: int
    due: datetime
    error: str | None
    refund: bool
    for_window: bool = False


async def claim_due(
    conn: BaseDBAsyncClient,
    *,
    mailing_id: int,
    revision: int,
    client_filter: ClientFilter,
    now: datetime,
    lease_seconds: float,
    worker: int,
    limit: int,
) -> list[Claimed]:
    """Lease up to ``limit`` due messages of a running mailing to ``worker``, oldest due first.

    Nothing is claimed unless the mailing is still running at ``revision``
    (the engine read it so), and only messages of clients that match the
    filter it read: a claim never sends under a stale status, text, window
    or filter. On PostgreSQL ``SKIP LOCKED`` lets workers claim side by side.
    """
    lock = " FOR UPDATE SKIP LOCKED" if is_postgres(conn) else ""
    where, params = client_filter.where(6, alias="c")
    matches = (
        ""
        if not params
        else f" AND EXISTS (SELECT 1 FROM client c WHERE c.id = m.client_id AND {where})"
    )
    rows = await fetch(
        conn,
        f"UPDATE message SET leased_until = {db_clock(conn, lease_seconds)}, leased_by = $4,"
        " attempts = attempts + 1, waits_for_window = FALSE"
        " WHERE id IN (SELECT m.id FROM message m"
        " WHERE m.mailing_id = $1 AND m.status = 'PENDING' AND m.leased_until IS NULL"
        " AND m.next_attempt_at <= $3 AND m.client_id IS NOT NULL"
        f"{matches}"
        " AND EXISTS (SELECT 1 FROM mailing g WHERE g.id = $1 AND g.revision = $2"
        " AND g.status = 'RUNNING' AND g.deleted_at IS NULL AND g.end_at > $3)"
        f" ORDER BY m.next_attempt_at LIMIT $5{lock})"
        " RETURNING id, client_id, phone, timezone, attempts",
        mailing_id,
        revision,
        now,
        worker,
        limit,
        *params,
    )
    return [
        Claimed(
            id=int(r["id"]),
            mailing_id=mailing_id,
            client_id=int(r["client_id"]),
            phone=str(r["phone"]),
            timezone=str(r["timezone"]),
            attempts=int(r["attempts"]),
        )
        for r in rows
    ]


def _values_table(
    conn: BaseDBAsyncClient, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """A derived table ``v(columns...)`` holding ``rows``, as SQL and parameters."""
    names = ", ".join(name for name, _ in columns)
    if is_postgres(conn):
        arrays = ", ".join(f"${i + 1}::{pg_type}[]" for i, (_, pg_type) in enumerate(columns))
        params = [[row[i] for row in rows] for i in range(len(columns))]
        return f"unnest({arrays}) AS v({names})", params
    width = len(columns)
    tuples = ", ".join(
        "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
        for r in range(len(rows))
    )
    aliases = ", ".join(f"column{i + 1} AS {name}" for i, (name, _) in enumerate(columns))
    params = [value for row in rows for value in row]
    return f"(SELECT {aliases} FROM (VALUES {tuples})) AS v", params


async def finalise_messages(
    conn: BaseDBAsyncClient, items: Sequence[Finalise], touched: set[int] | None = None
) -> int:
    """Record what the provider said; returns how many messages changed (were still pending).

    Whoever holds the lease now, the provider's answer is the truth: a final
    outcome lands even from a worker that outlived its lease. The ids of the
    mailings whose counts changed are added to ``touched``.
    """
    changed = 0
    for status in MessageStatus:
        group = [i for i in items if i.status is status]
        if not group:
            continue
        table, params = _values_table(
            conn,
            [("id", "bigint"), ("err", "text"), ("at", "timestamptz")],
            [(i.id, storable(i.error), i.at) for i in group],
        )
        sent_at = "v.at" if status is MessageStatus.SENT else "message.sent_at"
        # SENT clears last_error; other finals keep the previous one unless they bring their own.
        error = "v.err" if status is MessageStatus.SENT else "COALESCE(v.err, message.last_error)"
        rows = await fetch(
            conn,
            f"UPDATE message SET status = '{status.value}', last_error = {error},"
            f" sent_at = {sent_at}, leased_until = NULL, leased_by = NULL FROM {table}"
            " WHERE message.id = v.id AND message.status = 'PENDING'"
            " RETURNING message.mailing_id",
            *params,
        )
        await count_finalised_rows(conn, rows, status)
        changed += len(rows)
        if touched is not None:
            touched.update(int(row["mailing_id"]) for row in rows)
    return changed


async def reschedule_messages(
    conn: BaseDBAsyncClient, items: Sequence[Reschedule], worker: int
) -> list[int]:
    """Hand messages back to waiting (a retry after backoff, a claim returned unsent).

    Only messages ``worker`` still holds: one that outlived its lease must not
    release a message another worker has claimed since. Returns their ids.
    """
    if not items:
        return []
    table, params = _values_table(
        conn,
        [
            ("id", "bigint"),
            ("due", "timestamptz"),
            ("err", "text"),
            ("refund", "integer"),
            ("win", "boolean"),
        ],
        [(i.id, i.due, storable(i.error), int(i.refund), i.for_window) for i in items],
    )
    rows = await fetch(
        conn,
        "UPDATE message SET next_attempt_at = v.due, waits_for_window = v.win,"
        " last_error = COALESCE(v.err, message.last_error),"
        " attempts = message.attempts - v.refund, leased_until = NULL, leased_by = NULL"
        f" FROM {table} WHERE message.id = v.id AND message.status = 'PENDING'"
        f" AND message.leased_by = ${len(params) + 1}"
        " RETURNING message.id",
        *params,
        worker,
    )
    return [int(r["id"]) for r in rows]


async def settle_returned(
    conn: BaseDBAsyncClient, ids: Sequence[int], now: datetime, touched: set[int] | None = None
) -> int:
    """Apply to messages handed back what happened while they were in flight.

    Their mailing was cancelled or deleted, their client deleted or no longer
    matching: ``CANCELLED``; their mailing's end has come: ``EXPIRED``.
    """
    if not ids:
        return 0
    in_ids, ids_param = _ids(conn, ids, 1)
    cancelled = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', last_error = CASE"
        " WHEN message.client_id IS NULL THEN 'client deleted'"
        " WHEN g.status = 'CANCELLED' OR g.deleted_at IS NOT NULL THEN 'mailing cancelled'"
        " ELSE 'client no longer matches' END"
        f" FROM mailing g WHERE message.id {in_ids} AND message.status = 'PENDING'"
        " AND message.leased_until IS NULL AND g.id = message.mailing_id"
        " AND (message.client_id IS NULL OR g.status = 'CANCELLED' OR g.deleted_at IS NOT NULL"
        " OR NOT EXISTS (SELECT 1 FROM client c WHERE c.id = message.client_id"
        f" AND {_client_matches_mailing(conn)}))"
        " RETURNING message.mailing_id",
        ids_param,
    )
    await count_finalised_rows(conn, cancelled, MessageStatus.CANCELLED)
    expired = await fetch(
        conn,
        "UPDATE message SET status = 'EXPIRED',"
        " last_error = COALESCE(message.last_error, 'mailing ended before it was sent')"
        f" FROM mailing g WHERE message.id {in_ids} AND message.status = 'PENDING'"
        " AND message.leased_until IS NULL AND g.id = message.mailing_id AND g.end_at <= $2"
        " RETURNING message.mailing_id",
        ids_param,
        now,
    )
    await count_finalised_rows(conn, expired, MessageStatus.EXPIRED)
    if touched is not None:
        touched.update(int(row["mailing_id"]) for row in (*cancelled, *expired))
    return len(cancelled) + len(expired)


async def reap_ended_leases(conn: BaseDBAsyncClient) -> list[dict[str, Any]]:
    """Release the messages of leases that ended (their worker died): they wait again."""
    return await fetch(
        conn,
        "UPDATE message SET leased_until = NULL, leased_by = NULL"
        f" WHERE leased_until IS NOT NULL AND leased_until <= {db_clock(conn)}"
        " RETURNING id, mailing_id, client_id",
    )
