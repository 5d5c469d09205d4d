"""Sending the daily report: once per day, by whichever worker claims it, retried until it goes.

Every worker process runs :func:`report_tick` every minute (a Huey periodic
task). Once the report time has passed in the report's time zone, the tick
claims yesterday in ``daily_report`` (a unique row, inserted *before* the
email is sent), so two workers, a restart or a slow tick never send a day
twice. A failed attempt is recorded with its error and retried with backoff
on a later tick; a sender that dies mid-attempt leaves a claim that expires
and is retried. Days missed while no worker ran are caught up, up to a week.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import structlog

from models.db import close_db, connection, init_db
from models.queries.reports import (
    abandon_stale_reports,
    claim_new_report,
    claim_report_retry,
    last_reported_day,
    record_report_failed,
    record_report_sent,
    retryable_report_days,
)
from settings import Settings
from tasks.report.figures import DayReport, build_report
from tasks.report.mail import SEND_ERRORS, compose_report_email, send_email

__all__ = ["latest_due_day", "on_demand_report", "report_tick", "retry_delay", "yesterday"]

log = structlog.get_logger(__name__)

# Missed days are caught up, and failed ones retried, this far back.
HORIZON = timedelta(days=7)
_FIRST_RETRY = timedelta(minutes=1)
_LAST_RETRY = timedelta(hours=1)

Sender = Callable[[Settings, EmailMessage], dict[str, tuple[int, bytes]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def yesterday(now: datetime, timezone: ZoneInfo) -> date:
    return now.astimezone(timezone).date() - timedelta(days=1)


def latest_due_day(now: datetime, settings: Settings) -> date:
    """The last day whose report time has come: yesterday once the time passed today."""
    local = now.astimezone(ZoneInfo(settings.report_timezone))
    back = 1 if local.time() >= settings.report_time else 2
    return local.date() - timedelta(days=back)


def retry_delay(attempt: int) -> timedelta:
    """1, 2, 4 ... minutes after the ``attempt``-th failure, at most an hour."""
    delay: timedelta = _FIRST_RETRY * 2 ** min(attempt - 1, 10)
    return min(delay, _LAST_RETRY)


def _lease(settings: Settings) -> timedelta:
    # Long enough for every SMTP step to time out once, and the report to be built.
    return timedelta(seconds=settings.smtp_timeout * 4 + 120)


async def _new_days(settings: Settings, now: datetime) -> list[date]:
    latest = latest_due_day(now, settings)
    last = await last_reported_day(connection())
    if last is None:
        # A fresh install starts with the report due today, not an old one.
        return [latest] if latest == yesterday(now, ZoneInfo(settings.report_timezone)) else []
    first = max(last + timedelta(days=1), latest - HORIZON + timedelta(days=1))
    return [first + timedelta(days=n) for n in range((latest - first).days + 1)]


async def _claims(settings: Settings, now: datetime) -> list[tuple[date, int]]:
    conn = connection()
    oldest = latest_due_day(now, settings) - HORIZON
    for row in await abandon_stale_reports(conn, oldest, now):
        log.error(
            "daily report abandoned after failing for a week",
            report_day=str(row["day"]),
            attempts=row["attempts"],
            error=row["last_error"],
        )
    claimed = [
        (day, 1) for day in await _new_days(settings, now) if await claim_new_report(
            conn, day, now, _lease(settings)
        )
    ]  # fmt: skip
    for day in await retryable_report_days(conn, now):
        attempt = await claim_report_retry(conn, day, now, _lease(settings))
        if attempt is not None:
            claimed.append((day, attempt))
    return claimed


async def _deliver(
    settings: Settings, day: date, attempt: int, send: Sender, now: datetime
) -> bool:
    """One claimed attempt at one day's report, made at ``now``; whether it went out."""
    try:
        report = await build_report(day, ZoneInfo(settings.report_timezone), now)
        message = compose_report_email(report, settings, now)
        refused = await asyncio.to_thread(send, settings, message)
    except SEND_ERRORS as error:
        reason = f"{type(error).__name__}: {error}"[:1000]
        retry_at = now + retry_delay(attempt)
        await record_report_failed(connection(), day, attempt, utcnow(), reason, retry_at)
        log.warning(
            "daily report not sent; will retry",
            report_day=day.isoformat(),
            attempt=attempt,
            retry_at=retry_at.isoformat(),
            error=reason,
        )
        return False
    note = None
    if refused:
        note = "refused: " + ", ".join(f"{who} ({code})" for who, (code, _) in refused.items())
        log.warning(
            "daily report refused for some recipients", report_day=day.isoformat(), refused=note
        )
    if not await record_report_sent(connection(), day, attempt, utcnow(), note):
        log.warning(
            "daily report sent after its claim expired", report_day=day.isoformat(), attempt=attempt
        )
    log.info(
        "daily report sent",
        report_day=day.isoformat(),
        attempt=attempt,
        mailings=len(report.mailings),
        recipients=len(settings.report_recipients),
    )
    return True


async def report_tick(
    settings: Settings, now: datetime | None = None, send: Sender = send_email
) -> list[date]:
    """Send every report that is due and not claimed elsewhere; the days this call sent."""
    if not settings.report_enabled:
        return []
    now = now or utcnow()
    claims = await _claims(settings, now)
    return [day for day, attempt in claims if await _deliver(settings, day, attempt, send, now)]


async def on_demand_report(settings: Settings, day: date | None, *, send: bool) -> DayReport:
    """``mailings report``: a day's report (yesterday by default), sent now if asked.

    A report sent on demand goes out whatever the ledger says, and leaves it
    alone: the daily email still goes out as usual.
    """
    timezone = ZoneInfo(settings.report_timezone)
    now = utcnow()
    await init_db(settings)
    try:
        report = await build_report(day or yesterday(now, timezone), timezone, now)
    finally:
        await close_db()
    if send:
        message = compose_report_email(report, settings, now)
        refused = await asyncio.to_thread(send_email, settings, message)
        log.info(
            "report sent on demand",
            report_day=report.day.isoformat(),
            recipients=len(settings.report_recipients) - len(refused),
        )
    return report
