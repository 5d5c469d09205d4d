"""The statements behind a mailing's timeline: outcomes by time, read from ``finished_at``.

Both are served by the index (mailing_id, finished_at, status): a range of
one mailing's entries, counted without visiting the rows on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise import BaseDBAsyncClient

from models.db import fetch, is_postgres, stored_instant

__all__ = [
    "BucketCount",
    "answered_since",
    "answered_span",
    "finished_span",
    "outcomes_by_bucket",
]


@dataclass(frozen=True, slots=True)
class BucketCount:
    """``count`` messages of ``status`` finished in bucket ``index`` (None: no time recorded)."""

    index: int | None
    status: str
    count: int


def _epoch(conn: BaseDBAsyncClient, column: str) -> str:
    """Seconds since the epoch of a timestamp column, as SQL."""
    if is_postgres(conn):
        # date_part is a double; EXTRACT's numeric costs a third more over a million rows.
        return f"date_part('epoch', {column})"
    # SQLite stores instants as ISO text, which julianday() reads, offset included;
    # a day number is too coarse a float for whole seconds: round to the millisecond.
    return f"ROUND((julianday({column}) - 2440587.5) * 86400.0, 3)"


async def finished_span(
    conn: BaseDBAsyncClient, mailing_id: int
) -> tuple[datetime, datetime] | None:
    """The first and the last ``finished_at`` of the mailing's messages; None before any."""
    rows = await fetch(
        conn,
        "SELECT MIN(finished_at) AS first, MAX(finished_at) AS last FROM message"
        " WHERE mailing_id = $1 AND finished_at IS NOT NULL",
        mailing_id,
    )
    if not rows or rows[0]["first"] is None:
        return None
    return stored_instant(rows[0]["first"]), stored_instant(rows[0]["last"])


async def outcomes_by_bucket(
    conn: BaseDBAsyncClient, mailing_id: int, bucket_seconds: int
) -> list[BucketCount]:
    """Final messages counted by status and by ``bucket_seconds``-long bucket since the epoch."""
    if is_postgres(conn):
        index = f"FLOOR({_epoch(conn, 'finished_at')} / $2)::bigint"
    else:  # no FLOOR without SQLite's math functions; instants after 1970 truncate alike
        index = f"CAST({_epoch(conn, 'finished_at')} / $2 AS INTEGER)"
    rows = await fetch(
        conn,
        f"SELECT {index} AS bucket, status, COUNT(*) AS n FROM message"
        " WHERE mailing_id = $1 AND status <> 'PENDING'"
        " GROUP BY 1, 2",
        mailing_id,
        bucket_seconds,
    )
    return [
        BucketCount(
            index=None if row["bucket"] is None else int(row["bucket"]),
            status=str(row["status"]),
            count=int(row["n"]),
        )
        for row in rows
    ]


async def answered_since(
    conn: BaseDBAsyncClient, mailing_id: int, since: datetime, until: datetime
) -> int:
    """Messages the provider answered for good (SENT or FAILED) from ``since`` to ``until``."""
    rows = await fetch(
        conn,
        "SELECT COUNT(*) AS n FROM message WHERE mailing_id = $1 AND finished_at >= $2"
        " AND finished_at <= $3 AND status IN ('SENT', 'FAILED')",
        mailing_id,
        since,
        until,
    )
    return int(rows[0]["n"]) if rows else 0


async def answered_span(
    conn: BaseDBAsyncClient, mailing_id: int
) -> tuple[datetime, datetime] | None:
    """When the provider first and last answered the mailing's messages for good; None before."""
    rows = await fetch(
        conn,
        "SELECT MIN(finished_at) AS first, MAX(finished_at) AS last FROM message"
        " WHERE mailing_id = $1 AND finished_at IS NOT NULL AND status IN ('SENT', 'FAILED')",
        mailing_id,
    )
    if not rows or rows[0]["first"] is None:
        return None
    return stored_instant(rows[0]["first"]), stored_instant(rows[0]["last"])
