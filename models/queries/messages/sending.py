"""The engine's statements: claims (leases), outcomes, hand-backs, and reaping ended leases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models import clock
from models.audience import ClientFilter
from models.db import db_clock, fetch, is_postgres
from models.queries.counters import (
    count_finalised_rows,
)
from models.queries.messages.shared import (
    OPTED_OUT_REASON,
    client_matches_mailing,
    id_list,
    storable,
)
from models.status import MessageStatus

__all__ = [
    "Claimed",
    "Finalise",
    "HandBack",
    "claim_due",
    "finalise_handed_back",
    "finalise_messages",
    "hand_back_messages",
    "reap_ended_leases",
]


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
class HandBack:
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
            f" sent_at = {sent_at}, finished_at = v.at, leased_until = NULL, leased_by = NULL"
            f" FROM {table}"
            " WHERE message.id = v.id AND message.status = 'PENDING'"
            " RETURNING message.mailing_id",
            *params,
        )
        await count_finalised_rows(conn, rows, status)
        changed += len(rows)
        if touched is not None:
            touched.update(int(row["mailing_id"]) for row in rows)
    return changed


async def hand_back_messages(
    conn: BaseDBAsyncClient, items: Sequence[HandBack], worker: int
) -> list[int]:
    """Hand messages back to waiting (unsent, or for a retry after backoff).

    Only messages ``worker`` still holds: one that outlived its lease must not
    hand back a message another worker has claimed since. Returns their ids.
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


async def finalise_handed_back(
    conn: BaseDBAsyncClient, ids: Sequence[int], now: datetime, touched: set[int] | None = None
) -> int:
    """Apply to messages handed back what happened while they were in flight.

    Their mailing was cancelled or deleted, their client deleted, opted out or
    no longer matching: ``CANCELLED``; their mailing's end has come: ``EXPIRED``.
    """
    if not ids:
        return 0
    in_ids, ids_param = id_list(conn, ids, 1)
    cancelled = await fetch(
        conn,
        "UPDATE message SET status = 'CANCELLED', finished_at = $2, last_error = CASE"
        " WHEN message.client_id IS NULL THEN 'client deleted'"
        " WHEN g.status = 'CANCELLED' OR g.deleted_at IS NOT NULL THEN 'mailing cancelled'"
        " WHEN EXISTS (SELECT 1 FROM client c WHERE c.id = message.client_id"
        f" AND c.opted_out_at IS NOT NULL) THEN '{OPTED_OUT_REASON}'"
        " ELSE 'client no longer matches' END"
        f" FROM mailing g WHERE message.id {in_ids} AND message.status = 'PENDING'"
        " AND message.leased_until IS NULL AND g.id = message.mailing_id"
        " AND (message.client_id IS NULL OR g.status = 'CANCELLED' OR g.deleted_at IS NOT NULL"
        " OR NOT EXISTS (SELECT 1 FROM client c WHERE c.id = message.client_id"
        f" AND {client_matches_mailing(conn)}))"
        " RETURNING message.mailing_id",
        ids_param,
        now,
    )
    await count_finalised_rows(conn, cancelled, MessageStatus.CANCELLED)
    expired = await fetch(
        conn,
        "UPDATE message SET status = 'EXPIRED', finished_at = $2,"
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
    """Reap the leases that ended without an outcome (their worker died): they wait again.

    A reaped message comes back as a hand-back does (:func:`finalise_handed_back`):
    what happened while it was held applies now. A client who opted out (or
    was deleted, or no longer matches) while its message was held had it
    left to the worker; with the worker dead, this is where it is cancelled,
    or the next claim, which does not look at opt-outs, would send it.
    """
    rows = await fetch(
        conn,
        "UPDATE message SET leased_until = NULL, leased_by = NULL"
        f" WHERE leased_until IS NOT NULL AND leased_until <= {db_clock(conn)}"
        " RETURNING id, mailing_id, client_id",
    )
    await finalise_handed_back(conn, [int(row["id"]) for row in rows], clock.now())
    return rows
