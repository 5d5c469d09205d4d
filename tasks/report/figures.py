"""A day's statistics report: which mailings ran, what became of their messages, and why not.

A day is a calendar day in the report's time zone. A mailing ran on it when
it had started before the day ended and was not over before the day began
(it is open still, or it finished, was cancelled or deleted during the day or
after it). Its counts come from the counters, as of when the report is built;
"sent that day" counts the messages the provider accepted within the day.
Failed messages carry no time of failure, so failure reasons are the
mailing's own, grouped by ``last_error``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.mailing import Counts
from models.queries.messages import reasons_by_mailing, reasons_of_day, sent_that_day
from models.queries.reports import mailings_that_ran
from models.reporting import parse_instant

__all__ = [
    "DayReport",
    "MailingReport",
    "build_report",
    "day_bounds",
]


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


async def build_report(day: date, timezone: ZoneInfo, now: datetime) -> DayReport:
    """The report of ``day`` (in ``timezone``), with counts as of ``now``."""
    start, end = day_bounds(day, timezone)
    rows = await mailings_that_ran(start, end)
    ids = [int(row["id"]) for row in rows]
    sent = await sent_that_day(ids, start, end)
    reasons = await reasons_by_mailing(ids)
    mailings = tuple(
        MailingReport(
            id=int(row["id"]),
            text=str(row["text"]),
            status=str(row["status"]),
            deleted=row["deleted_at"] is not None,
            start_at=parse_instant(row["start_at"]),
            end_at=parse_instant(row["end_at"]),
            counts=Counts.from_row(row),
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
        failure_reasons=tuple(await reasons_of_day(ids)),
        totals=totals,
    )
