"""The engine's SQL: claiming due messages and recording what became of them.

A claim pushes ``next_attempt_at`` to the end of a lease and counts the
attempt, so a message held by a worker is invisible to every other claim
until the lease ends; if the worker dies, the message simply becomes due
again. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several workers claim
from one mailing at once; SQLite serialises writers by itself.

Every finalising statement is guarded by ``status = 'PENDING'`` and feeds
the counters with the rows it changed, so an outcome recorded twice (a
worker that outlived its lease) changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise import BaseDBAsyncClient

from models.counters import count_finalised_rows
from models.db import fetch, is_postgres
from models.status import MessageStatus

__all__ = [
    "Claimed",
    "Finalise",
    "Reschedule",
    "claim_due_messages",
    "finalise_messages",
    "reschedule_messages",
]


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    mailing_id: int
    client_id: int | None  # None: the client was deleted while a worker held the message
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
    """Message ``id`` stays pending until ``due``; ``refund`` undoes the claim's attempt."""

    id: int
    due: datetime
    error: str | None
    refund: bool


async def claim_due_messages(
    conn: BaseDBAsyncClient, mailing_id: int, now: datetime, lease_until: datetime, limit: int
) -> list[Claimed]:
    """Claim up to ``limit`` due messages of a mailing, oldest due first.

    A claimed message whose client was deleted comes back with ``client_id``
    ``None``, for the engine to cancel.
    """
    lock = " FOR UPDATE SKIP LOCKED" if is_postgres(conn) else ""
    rows = await fetch(
        conn,
        "UPDATE message SET next_attempt_at = $3, attempts = attempts + 1"
        " WHERE id IN (SELECT id FROM message"
        " WHERE mailing_id = $1 AND status = 'PENDING' AND next_attempt_at <= $2"
        f" ORDER BY next_attempt_at LIMIT $4{lock})"
        " RETURNING id, client_id, phone, timezone, attempts",
        mailing_id,
        now,
        lease_until,
        limit,
    )
    return [
        Claimed(
            id=int(r["id"]),
            mailing_id=mailing_id,
            client_id=None if r["client_id"] is None else int(r["client_id"]),
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
    """Record final outcomes; returns how many messages changed (were still pending).

    The ids of the mailings whose counts changed are added to ``touched``.
    """
    changed = 0
    for status in MessageStatus:
        group = [i for i in items if i.status is status]
        if not group:
            continue
        table, params = _values_table(
            conn,
            [("id", "bigint"), ("err", "text"), ("at", "timestamptz")],
            [(i.id, i.error, i.at) for i in group],
        )
        sent_at = "v.at" if status is MessageStatus.SENT else "message.sent_at"
        # SENT clears last_error; other finals keep the previous one unless they bring their own.
        error = "v.err" if status is MessageStatus.SENT else "COALESCE(v.err, message.last_error)"
        rows = await fetch(
            conn,
            f"UPDATE message SET status = '{status.value}', last_error = {error},"
            f" sent_at = {sent_at} FROM {table}"
            " WHERE message.id = v.id AND message.status = 'PENDING'"
            " RETURNING message.mailing_id",
            *params,
        )
        await count_finalised_rows(conn, rows, status)
        changed += len(rows)
        if touched is not None:
            touched.update(int(row["mailing_id"]) for row in rows)
    return changed


async def reschedule_messages(conn: BaseDBAsyncClient, items: Sequence[Reschedule]) -> None:
    """Put messages back to wait: a retry after backoff, or a claim handed back unsent."""
    if not items:
        return
    table, params = _values_table(
        conn,
        [("id", "bigint"), ("due", "timestamptz"), ("err", "text"), ("refund", "integer")],
        [(i.id, i.due, i.error, int(i.refund)) for i in items],
    )
    await fetch(
        conn,
        "UPDATE message SET next_attempt_at = v.due,"
        " last_error = COALESCE(v.err, message.last_error),"
        " attempts = message.attempts - v.refund"
        f" FROM {table} WHERE message.id = v.id AND message.status = 'PENDING'"
        " RETURNING message.id",
        *params,
    )
