"""The daily report as an email: plain text, HTML and a CSV attachment, sent over SMTP.

Sending is plain ``smtplib``, run in a thread: one message a day needs no
async SMTP client. The Message-ID is the same for every attempt at a day's
report, so a mail client can recognise a copy resent after a sender died
between the server's acceptance and our record of it.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from models.reporting import csv_lines, format_rate, spreadsheet_safe
from settings import Settings
from tasks.report.figures import DayReport, MailingReport

__all__ = [
    "SEND_ERRORS",
    "compose_report_email",
    "render_csv",
    "render_html",
    "render_text",
    "send_email",
]

# What a failed SMTP attempt raises: protocol refusals, and network or TLS trouble.
SEND_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)

_TEXT_PREVIEW = 60
_CSV_FIELDS = (
    "day",
    "mailing_id",
    "status",
    "deleted",
    "start_at",
    "end_at",
    "total",
    "pending",
    "sent",
    "failed",
    "expired",
    "cancelled",
    "sent_that_day",
    "delivery_rate",
    "top_failure_reason",
    "text",
)


def percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _preview(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _TEXT_PREVIEW else line[: _TEXT_PREVIEW - 1] + "…"


def _local(moment: datetime, report: DayReport) -> str:
    return moment.astimezone(ZoneInfo(report.timezone)).strftime("%Y-%m-%d %H:%M")


def _status(mailing: MailingReport) -> str:
    return f"{mailing.status} (deleted)" if mailing.deleted else mailing.status


def subject(report: DayReport) -> str:
    t = report.totals
    return (
        f"Mailings report {report.day.isoformat()}: {len(report.mailings)} mailings, "
        f"{t.sent} sent, {t.failed} failed, {t.expired} expired"
    )


def render_text(report: DayReport) -> str:
    """The plain-text part; also what ``mailings report`` prints."""
    t = report.totals
    lines = [
        f"Mailings report for {report.day.isoformat()} ({report.timezone})",
        f"Counts as of {_local(report.generated_at, report)}.",
        "",
        f"Mailings that ran: {len(report.mailings)}",
        f"Messages: {t.total} total, {t.sent} sent, {t.failed} failed, {t.expired} expired, "
        f"{t.cancelled} cancelled, {t.pending} pending",
        f"Delivery rate: {percent(t.delivery_rate)} (sent / (sent + failed + expired))",
        f"Sent during the day: {report.sent_that_day}",
    ]
    if report.failure_reasons:
        lines += ["", "Top failure reasons:"]
        lines += [
            f"  {n:>8}  {reason or '(none recorded)'}" for reason, n in report.failure_reasons
        ]
    if not report.mailings:
        lines += ["", "No mailing ran on this day."]
    for mailing in report.mailings:
        c = mailing.counts
        lines += [
            "",
            f"Mailing {mailing.id}: {_preview(mailing.text)!r}",
            f"  {_status(mailing)}, {_local(mailing.start_at, report)} to "
            f"{_local(mailing.end_at, report)}",
            f"  {c.total} total, {c.sent} sent ({mailing.sent_that_day} that day), "
            f"{c.failed} failed, {c.expired} expired, {c.cancelled} cancelled, {c.pending} pending",
            f"  delivery rate {percent(c.delivery_rate)}",
        ]
        lines += [
            f"  failed {n}x: {reason or '(none recorded)'}" for reason, n in mailing.failure_reasons
        ]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return f"<td>{html.escape(str(value))}</td>"


def render_html(report: DayReport) -> str:
    """The HTML part: the same figures as the text, as tables."""
    t = report.totals
    e = html.escape
    head = "".join(
        f"<th>{name}</th>"
        for name in (
            "Mailing", "Text", "Status", "Total", "Sent", "Sent that day", "Failed",
            "Expired", "Cancelled", "Pending", "Delivery rate", "Top failure reason",
        )
    )  # fmt: skip
    rows = []
    for mailing in report.mailings:
        c = mailing.counts
        top = mailing.failure_reasons[0][0] if mailing.failure_reasons else ""
        cells = (
            mailing.id, _preview(mailing.text), _status(mailing), c.total, c.sent,
            mailing.sent_that_day, c.failed, c.expired, c.cancelled, c.pending,
            percent(c.delivery_rate), top,
        )  # fmt: skip
        rows.append("<tr>" + "".join(_cell(value) for value in cells) + "</tr>")
    reasons = "".join(
        f"<li>{n} &times; {e(reason or '(none recorded)')}</li>"
        for reason, n in report.failure_reasons
    )
    body = [
        "<!DOCTYPE html><html><body>",
        f"<h1>Mailings report for {e(report.day.isoformat())} ({e(report.timezone)})</h1>",
        f"<p>Counts as of {e(_local(report.generated_at, report))}.</p>",
        "<table><tbody>",
        f"<tr><th>Mailings that ran</th><td>{len(report.mailings)}</td></tr>",
        f"<tr><th>Messages</th><td>{t.total}</td></tr>",
        f"<tr><th>Sent</th><td>{t.sent}</td></tr>",
        f"<tr><th>Failed</th><td>{t.failed}</td></tr>",
        f"<tr><th>Expired</th><td>{t.expired}</td></tr>",
        f"<tr><th>Cancelled</th><td>{t.cancelled}</td></tr>",
        f"<tr><th>Pending</th><td>{t.pending}</td></tr>",
        f"<tr><th>Delivery rate</th><td>{percent(t.delivery_rate)}</td></tr>",
        f"<tr><th>Sent during the day</th><td>{report.sent_that_day}</td></tr>",
        "</tbody></table>",
    ]
    if reasons:
        body += ["<h2>Top failure reasons</h2>", f"<ul>{reasons}</ul>"]
    if rows:
        body += ["<h2>Mailings</h2>", f"<table><thead><tr>{head}</tr></thead><tbody>"]
        body += [*rows, "</tbody></table>"]
    else:
        body.append("<p>No mailing ran on this day.</p>")
    body.append("</body></html>")
    return "\n".join(body) + "\n"


def render_csv(report: DayReport) -> bytes:
    """One row per mailing that ran, for the attachment."""
    lines: list[tuple[object, ...]] = [_CSV_FIELDS]
    for mailing in report.mailings:
        c = mailing.counts
        lines.append(
            (
                report.day.isoformat(),
                mailing.id,
                mailing.status,
                "yes" if mailing.deleted else "no",
                mailing.start_at.isoformat(),
                mailing.end_at.isoformat(),
                c.total,
                c.pending,
                c.sent,
                c.failed,
                c.expired,
                c.cancelled,
                mailing.sent_that_day,
                format_rate(c.delivery_rate),
                spreadsheet_safe(mailing.failure_reasons[0][0] if mailing.failure_reasons else ""),
                spreadsheet_safe(mailing.text),
            )
        )
    return csv_lines(lines)


def compose_report_email(report: DayReport, settings: Settings, now: datetime) -> EmailMessage:
    """The email of a day's report, addressed as the settings say."""
    message = EmailMessage()
    message["Subject"] = subject(report)
    message["From"] = settings.report_sender
    message["To"] = ", ".join(settings.report_recipients)
    message["Date"] = format_datetime(now)
    domain = settings.report_sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<daily-report-{report.day.isoformat()}@{domain}>"
    message.set_content(render_text(report))
    message.add_alternative(render_html(report), subtype="html")
    message.add_attachment(
        render_csv(report),
        maintype="text",
        subtype="csv",
        filename=f"mailings-report-{report.day.isoformat()}.csv",
    )
    return message


def send_email(
    settings: Settings, message: EmailMessage, ssl_context: ssl.SSLContext | None = None
) -> dict[str, tuple[int, bytes]]:
    """Deliver ``message`` to the SMTP server; the recipients it refused (all refused raises).

    Blocking: call it in a thread. Raises one of ``SEND_ERRORS`` on failure.
    """
    if settings.smtp_host is None:
        raise RuntimeError("SMTP_HOST is not set")
    host, port, timeout = settings.smtp_host, settings.smtp_port_or_default, settings.smtp_timeout
    context = ssl_context or ssl.create_default_context()
    client = (
        smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        if settings.smtp_tls == "tls"
        else smtplib.SMTP(host, port, timeout=timeout)
    )
    with client:
        if settings.smtp_tls == "starttls":
            client.starttls(context=context)
        if settings.smtp_user is not None:
            password = settings.smtp_password
            client.login(
                settings.smtp_user, "" if password is None else password.get_secret_value()
            )
        refused: dict[str, tuple[int, bytes]] = client.send_message(message)
    return refused
