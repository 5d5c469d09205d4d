"""SQL of the daily report: its figures, and its ledger (``daily_report``).

The ledger has one row per reported day, claimed before anything is sent.
Every worker process ticks the report task, so several may find the same day
due at the same moment. The unique ``day`` decides who sends it: whoever
inserts the row (or, for a retry, moves it from ``FAILED`` with a
compare-and-set) owns the attempt until ``next_attempt_at``. A sender that
dies mid-attempt leaves its claim to expire; the day is then tried again.
Rows move ``SENDING -> SENT`` or ``SENDING -> FAILED -> SENDING ...``; a day
that keeps failing past the retry horizon becomes ``ABANDONED``, loudly.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from tortoise import BaseDBAsyncClient

from models.db import connection, execute, fetch, insert_counting

__all__ = [
    "abandon_stale_reports",
    "claim_new_report",
    "claim_report_retry",
    "last_reported_day",
    "mailings_that_ran",
    "record_report_failed",
    "record_report_sent",
    "retryable_report_days",
]


_RAN = (
    "SELECT m.id, m.text, m.status, m.start_at, m.end_at, m.deleted_at,"
    " s.total, s.pending, s.sent, s.failed, s.expired, s.cancelled"
    " FROM mailing m JOIN mailing_stats s ON s.mailing_id = m.id"
    " WHERE m.audience_version IS NOT NULL AND m.start_at < $2"
    " AND (m.status NOT IN ('FINISHED', 'CANCELLED') OR m.updated_at >= $1)"
    " AND (m.deleted_at IS NULL OR m.deleted_at >= $1)"
    " ORDER BY m.id"
)


async def mailings_that_ran(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The mailings that ran between ``start`` and ``end``, with their counters."""
    return await fetch(connection(), _RAN, start, end)


def _day(value: object) -> date:
    # SQLite hands DATE columns back as text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def claim_new_report(
    conn: BaseDBAsyncClient, day: date, now: datetime, lease: timedelta
) -> bool:
    """Claim a day nobody has reported yet; ``False`` if a row for it exists."""
    added = await insert_counting(
        conn,
        "INSERT INTO daily_report (day, status, attempts, next_attempt_at, created_at, updated_at)"
        " VALUES ($1, 'SENDING', 1, $2, $3, $3) ON CONFLICT (day) DO NOTHING",
        day,
        now + lease,
        now,
    )
    return added == 1


async def claim_report_retry(
    conn: BaseDBAsyncClient, day: date, now: datetime, lease: timedelta
) -> int | None:
    """Claim a failed day whose retry is due, or one whose sender died; its attempt number."""
    rows = await fetch(
        conn,
        "UPDATE daily_report SET status = 'SENDING', attempts = attempts + 1,"
        " next_attempt_at = $3, updated_at = $2"
        " WHERE day = $1 AND status IN ('FAILED', 'SENDING') AND next_attempt_at <= $2"
        " RETURNING attempts",
        day,
        now,
        now + lease,
    )
    return int(rows[0]["attempts"]) if rows else None


async def record_report_sent(
    conn: BaseDBAsyncClient, day: date, attempt: int, now: datetime, note: str | None = None
) -> bool:
    """The claimed attempt went out; ``note`` keeps what the server refused, if anything."""
    changed = await execute(
        conn,
        "UPDATE daily_report SET status = 'SENT', sent_at = $3, updated_at = $3, last_error = $4"
        " WHERE day = $1 AND attempts = $2 AND status = 'SENDING'",
        day,
        attempt,
        now,
        note,
    )
    return changed == 1


async def record_report_failed(
    conn: BaseDBAsyncClient,
    day: date,
    attempt: int,
    now: datetime,
    error: str,
    retry_at: datetime,
) -> bool:
    """The claimed attempt failed; it is due again at ``retry_at``."""
    changed = await execute(
        conn,
        "UPDATE daily_report SET status = 'FAILED', last_error = $4, next_attempt_at = $5,"
        " updated_at = $3 WHERE day = $1 AND attempts = $2 AND status = 'SENDING'",
        day,
        attempt,
        now,
        error,
        retry_at,
    )
    return changed == 1


async def last_reported_day(conn: BaseDBAsyncClient) -> date | None:
    rows = await fetch(conn, "SELECT MAX(day) AS day FROM daily_report")
    value = rows[0]["day"] if rows else None
    return None if value is None else _day(value)


async def retryable_report_days(conn: BaseDBAsyncClient, now: datetime) -> list[date]:
    """Days whose failed attempt or expired claim is due again, oldest first."""
    rows = await fetch(
        conn,
        "SELECT day FROM daily_report WHERE status IN ('FAILED', 'SENDING')"
        " AND next_attempt_at <= $1 ORDER BY day",
        now,
    )
    return [_day(row["day"]) for row in rows]


async def abandon_stale_reports(
    conn: BaseDBAsyncClient, oldest: date, now: datetime
) -> list[dict[str, object]]:
    """Give up on failed days before ``oldest``; the rows given up on."""
    return await fetch(
        conn,
        "UPDATE daily_report SET status = 'ABANDONED', updated_at = $2"
        " WHERE day < $1 AND status = 'FAILED' RETURNING day, attempts, last_error",
        oldest,
        now,
    )
