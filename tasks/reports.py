"""A day's statistics report: which mailings ran, what became of their messages, and why not.

A day is a calendar day in the report's time zone. A mailing ran on it when
it had started before the day ended and was not over before the day began
(it is open still, or it finished, was cancelled or deleted during the day or
after it). Its counts come from the counters, as of when the report is built;
"sent that day" counts the messages the provider accepted within the day,
and failure reasons (``last_error`` grouped) are those of the messages that
failed within the day (``finished_at``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models.db import connection, fetch
from models.reporting import delivery_rate, parse_instant

__all__ = [
    "Counts",
    "DayReport",
    "MailingReport",
    "build_report",
    "day_bounds",
]

# Reasons listed per mailing, and for the whole day.
MAILING_REASONS = 3
DAY_REASONS = 5
# Ids per IN (...) list: well under every backend's parameter limit.
_CHUNK = 500

_RAN = (
    "SELECT m.id, m.text, m.status, m.start_at, m.end_at, m.deleted_at,"
    " s.total, s.pending, s.sent, s.failed, s.expired, s.cancelled"
    " FROM mailing m JOIN mailing_stats s ON s.mailing_id = m.id"
    " WHERE m.audience_version IS NOT NULL AND m.start_at < $2"
    " AND (m.status NOT IN ('FINISHED', 'CANCELLED') OR m.updated_at >= $1)"
    " AND (m.deleted_at IS NULL OR m.deleted_at >= $1)"
    " ORDER BY m.id"
)


@dataclass(frozen=True, slots=True)
class Counts:
    """Message counts by status; ``total`` is the sum of the others."""

    total: int = 0
    pending: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            total=self.total + other.total,
            pending=self.pending + other.pending,
            sent=self.sent + other.sent,
            failed=self.failed + other.failed,
            expired=self.expired + other.expired,
            cancelled=self.cancelled + other.cancelled,
        )

    @property
    def delivery_rate(self) -> float | None:
        return delivery_rate(self.sent, self.failed, self.expired)


@dataclass(frozen=True, slots=True)
class MailingReport:
    id: int
    text: str
    status: str
    deleted: bool
    start_at: datetime
    end_at: datetime
    counts: Counts
    sent_that_day: int
    failure_reasons: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class DayReport:
    day: date
    timezone: str
    generated_at: datetime
    mailings: tuple[MailingReport, ...]
    failure_reasons: tuple[tuple[str, int], ...]
    totals: Counts = field(default_factory=Counts)

    @property
    def sent_that_day(self) -> int:
        return sum(mailing.sent_that_day for mailing in self.mailings)


def day_bounds(day: date, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """The day's first instant and the next day's, in UTC (23 or 25 hours across DST)."""
    start = datetime.combine(day, time(0), timezone)
    end = datetime.combine(day + timedelta(days=1), time(0), timezone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def _chunks(ids: Sequence[int], first: int) -> Iterator[tuple[str, list[int]]]:
    """``ids`` in parts, each with its placeholders numbered from ``$first``."""
    for at in range(0, len(ids), _CHUNK):
        part = list(ids[at : at + _CHUNK])
        yield ", ".join(f"${i}" for i in range(first, first + len(part))), part


async def _sent_that_day(ids: Sequence[int], start: datetime, end: datetime) -> dict[int, int]:
    counts: dict[int, int] = {}
    for marks, part in _chunks(ids, 3):
        rows = await fetch(
            connection(),
            "SELECT mailing_id, COUNT(*) AS n FROM message WHERE status = 'SENT'"
            f" AND sent_at >= $1 AND sent_at < $2 AND mailing_id IN ({marks})"
            " GROUP BY mailing_id",
            start,
            end,
            *part,
        )
        counts.update({int(row["mailing_id"]): int(row["n"]) for row in rows})
    return counts


async def _reasons_by_mailing(
    ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[tuple[str, int]]]:
    reasons: dict[int, list[tuple[str, int]]] = {}
    for marks, part in _chunks(ids, 4):
        rows = await fetch(
            connection(),
            "SELECT mailing_id, reason, n FROM ("
            " SELECT mailing_id, COALESCE(last_error, '') AS reason, COUNT(*) AS n,"
            " ROW_NUMBER() OVER (PARTITION BY mailing_id"
            " ORDER BY COUNT(*) DESC, COALESCE(last_error, '')) AS place"
            " FROM message WHERE status = 'FAILED' AND finished_at >= $2 AND finished_at < $3"
            f" AND mailing_id IN ({marks}) GROUP BY mailing_id, COALESCE(last_error, '')"
            ") ranked WHERE place <= $1 ORDER BY mailing_id, place",
            MAILING_REASONS,
            start,
            end,
            *part,
        )
        for row in rows:
            reasons.setdefault(int(row["mailing_id"]), []).append(
                (str(row["reason"]), int(row["n"]))
            )
    return reasons


async def _reasons_of_day(
    ids: Sequence[int], start: datetime, end: datetime
) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for marks, part in _chunks(ids, 3):
        rows = await fetch(
            connection(),
            "SELECT COALESCE(last_error, '') AS reason, COUNT(*) AS n FROM message"
            " WHERE status = 'FAILED' AND finished_at >= $1 AND finished_at < $2"
            f" AND mailing_id IN ({marks}) GROUP BY COALESCE(last_error, '')",
            start,
            end,
            *part,
        )
        for row in rows:
            totals[str(row["reason"])] = totals.get(str(row["reason"]), 0) + int(row["n"])
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:DAY_REASONS]


def _counts(row: dict[str, Any]) -> Counts:
    # PostgreSQL returns BIGINT as int; int() also covers SQLite's and NUMERIC's types.
    return Counts(
        total=int(row["total"]),
        pending=int(row["pending"]),
        sent=int(row["sent"]),
        failed=int(row["failed"]),
        expired=int(row["expired"]),
        cancelled=int(row["cancelled"]),
    )


async def build_report(day: date, timezone: ZoneInfo, now: datetime) -> DayReport:
    """The report of ``day`` (in ``timezone``), with counts as of ``now``."""
    start, end = day_bounds(day, timezone)
    rows = await fetch(connection(), _RAN, start, end)
    ids = [int(row["id"]) for row in rows]
    sent = await _sent_that_day(ids, start, end)
    reasons = await _reasons_by_mailing(ids, start, end)
    mailings = tuple(
        MailingReport(
            id=int(row["id"]),
            text=str(row["text"]),
            status=str(row["status"]),
            deleted=row["deleted_at"] is not None,
            start_at=parse_instant(row["start_at"]),
            end_at=parse_instant(row["end_at"]),
            counts=_counts(row),
            sent_that_day=sent.get(int(row["id"]), 0),
            failure_reasons=tuple(reasons.get(int(row["id"]), ())),
        )
        for row in rows
    )
    totals = Counts()
    for mailing in mailings:
        totals += mailing.counts
    return DayReport(
        day=day,
        timezone=timezone.key,
        generated_at=now,
        mailings=mailings,
        failure_reasons=tuple(await _reasons_of_day(ids, start, end)),
        totals=totals,
    )
