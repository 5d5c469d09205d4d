"""The statements behind a mailing's timeline: outcomes per second, from ``timeline_count``.

``timeline_count`` holds, per mailing and second, how many messages reached
each final status then; triggers on ``message`` keep it in the statement that
changes a status (migration 8). So a timeline reads one row per second in
which something finished, never the mailing's messages: its cost does not
grow with the mailing's size. No statement here touches ``message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise import BaseDBAsyncClient

from models.db import fetch, stored_instant

__all__ = [
    "BucketCount",
    "answered_since",
    "answered_span",
    "finished_span",
    "outcomes_by_bucket",
    "undated",
]


@dataclass(frozen=True, slots=True)
class BucketCount:
    """``count`` messages of ``status`` finished in bucket ``index``."""

    index: int
    status: str
    count: int


def _second(moment: datetime) -> int:
    return int(moment.timestamp() // 1)


async def finished_span(
    conn: BaseDBAsyncClient, mailing_id: int
) -> tuple[datetime, datetime] | None:
    """The first and the last second in which a message of the mailing finished; None before any."""
    rows = await fetch(
        conn,
        "SELECT MIN(second) AS first, MAX(second) AS last FROM timeline_count"
        " WHERE mailing_id = $1 AND n > 0",
        mailing_id,
    )
    if not rows or rows[0]["first"] is None:
        return None
    first, last = (datetime.fromtimestamp(int(rows[0][key]), UTC) for key in ("first", "last"))
    return first, last


async def outcomes_by_bucket(
    conn: BaseDBAsyncClient, mailing_id: int, bucket_seconds: int
) -> list[BucketCount]:
    """Final messages counted by status and by ``bucket_seconds``-long bucket since the epoch."""
    rows = await fetch(
        conn,
        # Whole seconds since 1970 divide as integers: the bucket's floor.
        "SELECT second / $2 AS bucket, status, SUM(n) AS n FROM timeline_count"
        " WHERE mailing_id = $1 GROUP BY 1, 2 HAVING SUM(n) <> 0",
        mailing_id,
        bucket_seconds,
    )
    return [
        BucketCount(index=int(row["bucket"]), status=str(row["status"]), count=int(row["n"]))
        for row in rows
    ]


async def undated(conn: BaseDBAsyncClient, mailing_id: int) -> int:
    """Final messages without a time (finalised before ``finished_at`` was recorded).

    What ``mailing_stats`` counts final and ``timeline_count`` does not.
    """
    rows = await fetch(
        conn,
        "SELECT s.sent + s.failed + s.expired + s.cancelled"
        " - COALESCE((SELECT SUM(n) FROM timeline_count t WHERE t.mailing_id = s.mailing_id), 0)"
        " AS n FROM mailing_stats s WHERE s.mailing_id = $1",
        mailing_id,
    )
    return max(int(rows[0]["n"]), 0) if rows else 0


async def answered_since(
    conn: BaseDBAsyncClient, mailing_id: int, since: datetime, until: datetime
) -> int:
    """Messages the provider answered for good (SENT or FAILED) in the seconds from
    ``since`` to ``until``, both included."""
    rows = await fetch(
        conn,
        "SELECT COALESCE(SUM(n), 0) AS n FROM timeline_count WHERE mailing_id = $1"
        " AND second >= $2 AND second <= $3 AND status IN ('SENT', 'FAILED')",
        mailing_id,
        _second(since),
        _second(until),
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
