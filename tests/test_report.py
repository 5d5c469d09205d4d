"""The daily report: which mailings a day holds, its figures, its renderings, and when it is sent.

Built in process against the real database; the email goes to a fake sender
here, and to a real SMTP server in ``test_report_email.py``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models import DailyReport, Mailing, MailingStatus, MessageStatus, ReportStatus
from models.db import connection, execute, fetch
from models.queries.reports import claim_new_report
from settings import Settings
from tasks.report.figures import build_report, day_bounds
from tasks.report.mail import compose_report_email, render_csv, render_html, render_text
from tasks.report.schedule import latest_due_day, report_tick, retry_delay
from tests.support.api import add_audience, finalise
from tests.support.factories import make_client, make_mailing

MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3 all year
DAY = date(2026, 1, 10)


def msk(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), MOSCOW)


def report_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": 2525,
        "smtp_tls": "none",
        "report_sender": "reports@mailings.test",
        "report_recipients": ("ops@example.com",),
        "report_time": time(8, 0),
        "report_timezone": "Europe/Moscow",
        **overrides,
    }
    return Settings(**values)


async def mailing_on(
    start: datetime,
    end: datetime,
    status: MailingStatus,
    *,
    changed_at: datetime | None = None,
    started: bool = True,
    deleted_at: datetime | None = None,
    text: str = "Hello",
) -> Mailing:
    """A mailing as the engine leaves it: started or not, last changed at ``changed_at``."""
    mailing = await make_mailing(
        text=text, start_at=start, end_at=end, status=status, deleted_at=deleted_at
    )
    await execute(
        connection(),
        "UPDATE mailing SET updated_at = $2, audience_version = $3 WHERE id = $1",
        mailing.id,
        (changed_at or start).astimezone(UTC),
        1 if started else None,
    )
    return mailing


async def set_sent_at(mailing_id: int, count: int, at: datetime) -> None:
    rows = await fetch(
        connection(),
        "SELECT id FROM message WHERE mailing_id = $1 AND status = 'SENT' ORDER BY id LIMIT $2",
        mailing_id,
        count,
    )
    for row in rows:
        await execute(
            connection(),
            "UPDATE message SET sent_at = $2 WHERE id = $1",
            row["id"],
            at.astimezone(UTC),  # instants go to SQL in UTC (CONVENTIONS)
        )


async def set_errors(mailing_id: int, errors: list[str]) -> None:
    rows = await fetch(
        connection(),
        "SELECT id FROM message WHERE mailing_id = $1 AND status = 'FAILED' ORDER BY id",
        mailing_id,
    )
    assert len(rows) == len(errors)
    for row, error in zip(rows, errors, strict=True):
        await execute(
            connection(), "UPDATE message SET last_error = $2 WHERE id = $1", row["id"], error
        )


class Day:
    """Mailings around DAY, some of which ran on it."""

    running: Mailing
    finished: Mailing
    deleted: Mailing


@pytest.fixture
async def day(db: str) -> Day:
    for _ in range(10):
        await make_client()
    before, after = DAY - timedelta(days=1), DAY + timedelta(days=1)
    d = Day()
    # Started the day before and still running: it ran.
    d.running = await mailing_on(
        msk(before, 10), msk(DAY + timedelta(days=5), 10), MailingStatus.RUNNING
    )
    await add_audience(d.running)
    await finalise(d.running.id, MessageStatus.SENT, 2)
    await set_sent_at(d.running.id, 2, msk(before, 11))
    # Ran and finished within the day.
    d.finished = await mailing_on(
        msk(DAY, 9),
        msk(DAY, 20),
        MailingStatus.FINISHED,
        changed_at=msk(DAY, 20),
        text="Winter <b>sale</b>, 20% off",
    )
    await add_audience(d.finished)
    await finalise(d.finished.id, MessageStatus.SENT, 5)
    await set_sent_at(d.finished.id, 4, msk(DAY, 10))  # the fifth: sent "now", another day
    await finalise(d.finished.id, MessageStatus.FAILED, 3)
    await set_errors(
        d.finished.id,
        ["HTTP 400: invalid recipient", "HTTP 400: blocked", "HTTP 400: invalid recipient"],
    )
    await finalise(d.finished.id, MessageStatus.EXPIRED, 1)
    await finalise(d.finished.id, MessageStatus.CANCELLED, 1)
    # Deleted during the day: it ran, and says it was deleted.
    d.deleted = await mailing_on(
        msk(before, 12),
        msk(after, 12),
        MailingStatus.CANCELLED,
        changed_at=msk(DAY, 12),
        deleted_at=msk(DAY, 12),
    )
    # None of these ran on DAY.
    await mailing_on(
        msk(before, 1), msk(before, 23), MailingStatus.FINISHED, changed_at=msk(before, 23)
    )
    await mailing_on(msk(after, 9), msk(after, 20), MailingStatus.RUNNING)
    await mailing_on(
        msk(before, 1), msk(after, 1), MailingStatus.CANCELLED, deleted_at=msk(before, 20),
        changed_at=msk(before, 20),
    )  # fmt: skip
    await mailing_on(msk(DAY, 10), msk(DAY, 11), MailingStatus.SCHEDULED, started=False)
    return d


def test_day_bounds_follow_the_time_zone() -> None:
    assert day_bounds(DAY, MOSCOW) == (
        datetime(2026, 1, 9, 21, tzinfo=UTC),
        datetime(2026, 1, 10, 21, tzinfo=UTC),
    )
    start, end = day_bounds(date(2026, 3, 29), ZoneInfo("Europe/Berlin"))
    assert end - start == timedelta(hours=23)


async def test_report_holds_the_mailings_that_ran_that_day(day: Day) -> None:
    now = datetime.now(UTC)
    report = await build_report(DAY, MOSCOW, now)
    assert [m.id for m in report.mailings] == [day.running.id, day.finished.id, day.deleted.id]
    running, finished, deleted = report.mailings

    assert (running.counts.total, running.counts.sent, running.counts.pending) == (10, 2, 8)
    assert running.sent_that_day == 0
    assert running.counts.delivery_rate == 1.0

    c = finished.counts
    assert (c.total, c.pending, c.sent, c.failed, c.expired, c.cancelled) == (10, 0, 5, 3, 1, 1)
    assert finished.sent_that_day == 4
    assert c.delivery_rate == pytest.approx(5 / 9)
    assert finished.failure_reasons == (
        ("HTTP 400: invalid recipient", 2),
        ("HTTP 400: blocked", 1),
    )
    assert finished.status == "FINISHED"
    assert not finished.deleted

    assert deleted.deleted
    assert deleted.counts.total == 0
    assert deleted.counts.delivery_rate is None

    t = report.totals
    assert (t.total, t.pending, t.sent, t.failed, t.expired, t.cancelled) == (20, 8, 7, 3, 1, 1)
    assert report.sent_that_day == 4
    assert report.failure_reasons == finished.failure_reasons
    assert report.timezone == "Europe/Moscow"


async def test_renderings_agree_with_the_figures(day: Day) -> None:
    report = await build_report(DAY, MOSCOW, datetime.now(UTC))

    text = render_text(report)
    assert text.startswith("Mailings report for 2026-01-10 (Europe/Moscow)\n")
    assert "Mailings that ran: 3" in text
    assert "Messages: 20 total, 7 sent, 3 failed, 1 expired, 1 cancelled, 8 pending" in text
    assert "Delivery rate: 63.6%" in text  # 7 / (7 + 3 + 1)
    assert "Sent during the day: 4" in text
    assert "       2  HTTP 400: invalid recipient" in text
    assert f"Mailing {day.finished.id}: 'Winter <b>sale</b>, 20% off'" in text
    assert "10 total, 5 sent (4 that day), 3 failed, 1 expired, 1 cancelled, 0 pending" in text
    assert "delivery rate 55.6%" in text
    assert "CANCELLED (deleted)" in text

    page = render_html(report)
    assert "Winter &lt;b&gt;sale&lt;/b&gt;, 20% off" in page
    assert "<b>sale</b>" not in page
    assert "<td>63.6%</td>" in page
    assert "<li>2 &times; HTTP 400: invalid recipient</li>" in page

    header, *rows = list(csv.reader(io.StringIO(render_csv(report).decode())))
    assert header[:3] == ["day", "mailing_id", "status"]
    by_id = {int(row[1]): dict(zip(header, row, strict=True)) for row in rows}
    assert list(by_id) == [day.running.id, day.finished.id, day.deleted.id]
    finished = by_id[day.finished.id]
    assert finished["day"] == "2026-01-10"
    assert (finished["total"], finished["sent"], finished["failed"]) == ("10", "5", "3")
    assert finished["sent_that_day"] == "4"
    assert finished["delivery_rate"] == "0.5556"
    assert finished["top_failure_reason"] == "HTTP 400: invalid recipient"
    assert finished["text"] == "Winter <b>sale</b>, 20% off"
    assert by_id[day.deleted.id]["deleted"] == "yes"
    assert by_id[day.deleted.id]["delivery_rate"] == ""


async def test_an_empty_day_still_makes_a_report(db: str) -> None:
    report = await build_report(DAY, MOSCOW, datetime.now(UTC))
    assert report.mailings == ()
    assert "No mailing ran on this day." in render_text(report)
    assert "No mailing ran on this day." in render_html(report)
    assert render_csv(report).count(b"\r\n") == 1


async def test_the_email_has_text_html_and_csv(day: Day) -> None:
    settings = report_settings(report_recipients=("a@example.com", "b@example.com"))
    now = datetime.now(UTC)
    report = await build_report(DAY, MOSCOW, now)
    message = compose_report_email(report, settings, now)
    assert message["Subject"] == (
        "Mailings report 2026-01-10: 3 mailings, 7 sent, 3 failed, 1 expired"
    )
    assert message["To"] == "a@example.com, b@example.com"
    assert message["From"] == "reports@mailings.test"
    assert message["Message-ID"] == "<daily-report-2026-01-10@mailings.test>"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content() == render_text(report)
    html = message.get_body(("html",))
    assert html is not None
    assert html.get_content() == render_html(report)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "mailings-report-2026-01-10.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content().encode() == render_csv(report)


class FakeSender:
    """Stands in for SMTP: records what it is given; fails the first ``failures`` times."""

    def __init__(
        self, failures: int = 0, refused: dict[str, tuple[int, bytes]] | None = None
    ) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = failures
        self.refused = refused or {}
        self.calls = 0

    def __call__(self, settings: Settings, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        self.sent.append(message)
        return self.refused


async def ledger() -> list[DailyReport]:
    return await DailyReport.all().order_by("day")


def test_the_latest_due_day_turns_at_the_report_time() -> None:
    settings = report_settings()
    assert latest_due_day(msk(DAY, 7, 59), settings) == DAY - timedelta(days=2)
    assert latest_due_day(msk(DAY, 8, 0), settings) == DAY - timedelta(days=1)
    assert latest_due_day(msk(DAY, 23, 59), settings) == DAY - timedelta(days=1)
    assert [retry_delay(n) for n in (1, 2, 3, 7, 30)] == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(hours=1),
        timedelta(hours=1),
    ]


async def test_nothing_is_sent_without_smtp_settings(db: str) -> None:
    send = FakeSender()
    for settings in (report_settings(smtp_host=None), report_settings(report_recipients=())):
        assert not settings.report_enabled
        assert await report_tick(settings, msk(DAY, 9), send) == []
    assert send.calls == 0
    assert await ledger() == []


async def test_yesterday_goes_out_once_the_time_has_passed(db: str) -> None:
    settings, send = report_settings(), FakeSender()
    assert await report_tick(settings, msk(DAY, 7, 59), send) == []
    assert await report_tick(settings, msk(DAY, 8, 0), send) == [DAY - timedelta(days=1)]
    assert await report_tick(settings, msk(DAY, 8, 1), send) == []
    assert await report_tick(settings, msk(DAY, 23, 0), send) == []
    assert len(send.sent) == 1
    assert send.sent[0]["Subject"].startswith("Mailings report 2026-01-09:")
    [row] = await ledger()
    assert (row.day, row.status, row.attempts) == (DAY - timedelta(days=1), ReportStatus.SENT, 1)
    assert row.sent_at is not None
    # The next morning, the next day.
    assert await report_tick(settings, msk(DAY + timedelta(days=1), 8, 0), send) == [DAY]


async def test_concurrent_ticks_send_one_email(db: str) -> None:
    settings, send = report_settings(), FakeSender()
    sent = await asyncio.gather(*(report_tick(settings, msk(DAY, 9), send) for _ in range(8)))
    assert sorted(len(days) for days in sent) == [0] * 7 + [1]
    assert len(send.sent) == 1


async def test_a_failure_is_recorded_and_retried_with_backoff(db: str) -> None:
    settings, send = report_settings(), FakeSender(failures=2)
    first = msk(DAY, 9)
    assert await report_tick(settings, first, send) == []
    [row] = await ledger()
    assert (row.status, row.attempts) == (ReportStatus.FAILED, 1)
    assert row.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    # Not before its backoff (a minute) has passed; then again, after two more.
    assert await report_tick(settings, first + timedelta(seconds=30), send) == []
    assert send.calls == 1
    assert await report_tick(settings, first + timedelta(seconds=65), send) == []
    [row] = await ledger()
    assert (row.status, row.attempts) == (ReportStatus.FAILED, 2)
    assert await report_tick(settings, first + timedelta(seconds=150), send) == []
    assert send.calls == 2
    assert await report_tick(settings, first + timedelta(seconds=190), send) == [
        DAY - timedelta(days=1)
    ]
    [row] = await ledger()
    assert (row.status, row.attempts, row.last_error) == (ReportStatus.SENT, 3, None)
    assert len(send.sent) == 1


async def test_a_claim_whose_sender_died_is_retried_after_its_lease(db: str) -> None:
    settings, send = report_settings(), FakeSender()
    now = datetime.now(UTC)
    yesterday = now.astimezone(MOSCOW).date() - timedelta(days=1)
    assert await claim_new_report(connection(), yesterday, now, timedelta(minutes=5))
    assert await report_tick(settings, now + timedelta(minutes=4), send) == []
    assert await report_tick(settings, now + timedelta(minutes=6), send) == [yesterday]
    [row] = await ledger()
    assert (row.status, row.attempts) == (ReportStatus.SENT, 2)


async def test_missed_days_are_caught_up_within_a_week(db: str) -> None:
    settings, send = report_settings(), FakeSender()
    await report_tick(settings, msk(DAY - timedelta(days=20), 9), send)
    assert await report_tick(settings, msk(DAY, 9), send) == [
        DAY - timedelta(days=n) for n in range(7, 0, -1)
    ]
    assert [row.day for row in await ledger()][-7:] == [
        DAY - timedelta(days=n) for n in range(7, 0, -1)
    ]


async def test_a_day_failing_for_a_week_is_abandoned_loudly(db: str) -> None:
    settings = report_settings()
    await report_tick(settings, msk(DAY, 9), FakeSender(failures=1))
    [row] = await ledger()
    assert row.status is ReportStatus.FAILED
    send = FakeSender()
    week_later = msk(DAY + timedelta(days=8), 9)
    sent = await report_tick(settings, week_later, send)
    rows = {row.day: row for row in await ledger()}
    assert rows[DAY - timedelta(days=1)].status is ReportStatus.ABANDONED
    assert DAY - timedelta(days=1) not in sent
    assert sent[-1] == DAY + timedelta(days=7)


async def test_recipients_refused_by_the_server_are_noted(db: str) -> None:
    settings = report_settings(report_recipients=("ops@example.com", "gone@example.com"))
    send = FakeSender(refused={"gone@example.com": (550, b"no such mailbox")})
    assert await report_tick(settings, msk(DAY, 9), send) == [DAY - timedelta(days=1)]
    [row] = await ledger()
    assert row.status is ReportStatus.SENT
    assert row.last_error == "refused: gone@example.com (550)"
