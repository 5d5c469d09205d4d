"""The daily report over real SMTP (aiosmtpd on loopback): TLS, login, real workers, the CLI.

The end-to-end test runs a mailing through real workers and the real
simulator, moves it to yesterday, and checks the email a worker then sends
against the database. Two workers and a restart still send one email.
"""

from __future__ import annotations

import csv
import io
import os
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme

from models import DailyReport, MailingStatus, ReportStatus
from models.db import connection, execute, fetch
from settings import Settings
from tasks.report.mail import send_email
from tasks.report.schedule import report_tick
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    start_mailing,
    stats_of,
    wait_for_status,
    wait_until,
)
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow


class _NoProvider:
    """Workers that only send reports need no send API."""

    url = "http://127.0.0.1:9"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def fresh_queue(db: str) -> Iterator[None]:
    from tasks.queue import huey

    huey.flush()
    yield
    huey.flush()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def settings_for(server: SmtpServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_tls": "none",
        "smtp_timeout": 10,
        "report_sender": "reports@mailings.test",
        "report_recipients": ("ops@example.com", "boss@example.com"),
        "report_timezone": "UTC",
        "report_time": "00:00",
        **overrides,
    }
    return Settings(**values)


def yesterday() -> datetime:
    """Noon yesterday (UTC): well inside the day the report covers."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


async def report_rows() -> list[DailyReport]:
    return await DailyReport.all().order_by("day")


def worker_ticks(*workers: Worker) -> int:
    """How many report ticks the workers have run, together."""
    return sum(
        line.count("Executing tasks.jobs.send_daily_report")
        for worker in workers
        for line in worker.log().splitlines()
    )


async def test_a_tick_sends_the_report_over_smtp(smtp: SmtpServer, db: str) -> None:
    settings = settings_for(smtp)
    [day] = await report_tick(settings)
    [received] = smtp.inbox.wait_for(1)
    assert received.sender == "reports@mailings.test"
    assert sorted(received.recipients) == ["boss@example.com", "ops@example.com"]
    assert received.message["Subject"].startswith(f"Mailings report {day.isoformat()}: 0 mailings")
    assert "No mailing ran on this day." in received.part("text/plain")
    assert "Mailings report · " in received.part("text/html")
    assert received.part("text/csv").startswith("day,mailing_id,status")


async def test_starttls_with_login(ca: trustme.CA, db: str) -> None:
    server = SmtpServer.with_login(tls_context=server_tls(ca), require_starttls=True)
    try:
        settings = settings_for(
            server,
            smtp_tls="starttls",
            smtp_user="reporter",
            smtp_password="pa55word",
        )
        send_email(settings, _message(), ssl_context=client_tls(ca))
        [received] = server.inbox.wait_for(1)
        assert received.message["Subject"] == "hello"
        # A client that does not trust the certificate sends nothing.
        with pytest.raises(ssl.SSLError):
            send_email(settings, _message())
        wrong = settings_for(
            server, smtp_tls="starttls", smtp_user="reporter", smtp_password="guess"
        )
        with pytest.raises(smtplib.SMTPAuthenticationError):
            send_email(wrong, _message(), ssl_context=client_tls(ca))
        assert len(server.inbox.messages()) == 1
    finally:
        server.stop()


async def test_implicit_tls(ca: trustme.CA, db: str) -> None:
    server = SmtpServer(ssl_context=server_tls(ca))
    try:
        send_email(settings_for(server, smtp_tls="tls"), _message(), ssl_context=client_tls(ca))
        [received] = server.inbox.wait_for(1)
        assert received.message["Subject"] == "hello"
    finally:
        server.stop()


def _message() -> Any:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "hello"
    message["From"] = "reports@mailings.test"
    message["To"] = "ops@example.com"
    message.set_content("hi")
    return message


async def _move_to_yesterday(mailing_id: int) -> None:
    """The mailing ran yesterday: its instants move there, its outcomes stay."""
    noon = yesterday()
    conn = connection()
    await execute(
        conn,
        "UPDATE mailing SET start_at = $2, end_at = $3, created_at = $2, updated_at = $3"
        " WHERE id = $1",
        mailing_id,
        noon - timedelta(hours=1),
        noon + timedelta(hours=1),
    )
    await execute(
        conn,
        "UPDATE message SET created_at = $2, next_attempt_at = $2 WHERE mailing_id = $1",
        mailing_id,
        noon - timedelta(hours=1),
    )
    await execute(
        conn,
        "UPDATE message SET sent_at = $2 WHERE mailing_id = $1 AND sent_at IS NOT NULL",
        mailing_id,
        noon,
    )
    await execute(
        conn,
        "UPDATE message SET finished_at = $2 WHERE mailing_id = $1 AND finished_at IS NOT NULL",
        mailing_id,
        noon,
    )


async def test_the_email_matches_a_mailing_run_end_to_end(
    smtp: SmtpServer, fresh_queue: None
) -> None:
    sim = Simulator("--seed", "7", "--reject-rate", "0.3")
    try:
        await add_clients(120)
        sender = Worker(sim)
        try:
            mailing = await start_mailing(text="Spring sale: 20% off")
            await wait_for_status(mailing.id, MailingStatus.FINISHED)
        finally:
            sender.stop()
    finally:
        await sim.close()
    stats = await stats_of(mailing.id)
    assert stats["sent"] > 0
    assert stats["failed"] > 0
    assert stats["sent"] + stats["failed"] == 120
    reasons = await fetch(
        connection(),
        "SELECT last_error, COUNT(*) AS n FROM message WHERE mailing_id = $1"
        " AND status = 'FAILED' GROUP BY last_error",
        mailing.id,
    )
    [(reason, failed)] = [(str(row["last_error"]), int(row["n"])) for row in reasons]
    assert "simulated permanent rejection" in reason
    await _move_to_yesterday(mailing.id)

    reporter = Worker(_NoProvider(), **smtp.env(REPORT_TIME="00:00", REPORT_TIMEZONE="UTC"))
    try:
        [received] = smtp.inbox.wait_for(1)
    finally:
        reporter.stop()

    day = yesterday().date().isoformat()
    rate = f"{stats['sent'] / 120 * 100:.1f}%"
    assert received.message["Subject"] == (
        f"Mailings report {day}: 1 mailings, {stats['sent']} sent, {failed} failed, 0 expired"
    )
    assert received.message["Message-ID"] == f"<daily-report-{day}@mailings.test>"
    text = received.part("text/plain")
    assert f"Mailings report for {day} (UTC)" in text
    assert f"Messages: 120 total, {stats['sent']} sent, {failed} failed, 0 expired" in text
    assert f"Delivery rate: {rate}" in text
    assert f"Sent during the day: {stats['sent']}" in text
    assert f"{failed:>8}  {reason}" in text
    assert f"Mailing {mailing.id}: 'Spring sale: 20% off'" in text
    assert f"  FINISHED, {day} 11:00 to {day} 13:00" in text
    html = received.part("text/html")
    assert f">{rate}</td>" in html
    assert " · Spring sale: 20% off</span>" in html
    [row] = list(csv.DictReader(io.StringIO(received.part("text/csv"))))
    assert row["mailing_id"] == str(mailing.id)
    assert (row["total"], row["sent"], row["failed"]) == ("120", str(stats["sent"]), str(failed))
    assert row["sent_that_day"] == str(stats["sent"])
    assert row["delivery_rate"] == f"{stats['sent'] / 120:.4f}"
    assert row["top_failure_reason"] == reason
    [ledger] = await report_rows()
    assert (ledger.day.isoformat(), ledger.status, ledger.attempts) == (day, ReportStatus.SENT, 1)


async def test_one_email_a_day_with_two_workers_and_a_restart(
    smtp: SmtpServer, fresh_queue: None
) -> None:
    env = smtp.env(REPORT_TIME="00:00", REPORT_TIMEZONE="UTC")
    first, second = Worker(_NoProvider(), **env), Worker(_NoProvider(), **env)
    workers = [first, second]
    try:
        smtp.inbox.wait_for(1)
        # Each worker's scheduler ticks as it starts: both ticks have run.
        await wait_until(_ticks_at_least(workers, 2))
        first.stop()
        restarted = Worker(_NoProvider(), **env)
        workers.append(restarted)
        await wait_until(_ticks_at_least(workers, 3))
    finally:
        for worker in workers:
            worker.stop()
    assert len(smtp.inbox.messages()) == 1
    [ledger] = await report_rows()
    assert (ledger.status, ledger.attempts) == (ReportStatus.SENT, 1)
    assert sum(w.log().count("daily report sent") for w in workers) == 1


def _ticks_at_least(workers: list[Worker], count: int) -> Any:
    async def check() -> bool:
        return worker_ticks(*workers) >= count

    return check


async def test_an_smtp_failure_is_recorded_then_sent_on_a_later_tick(fresh_queue: None) -> None:
    from tests.conftest import bound_socket, port_of

    sock = bound_socket()  # held, and nothing listens yet: the SMTP server is down
    port = port_of(sock)
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_TLS": "none",
        "REPORT_RECIPIENTS": "ops@example.com",
        "REPORT_TIME": "00:00",
        "REPORT_TIMEZONE": "UTC",
    }
    worker = Worker(_NoProvider(), **env)
    try:
        await wait_until(_report_status(ReportStatus.FAILED))
        assert "daily report not sent; will retry" in worker.log()
    finally:
        worker.stop()
    [ledger] = await report_rows()
    assert ledger.attempts == 1
    assert ledger.last_error is not None
    assert "ConnectionRefusedError" in ledger.last_error

    server = SmtpServer(sock)
    try:
        # The minute of backoff passes; the next tick (here: a restarted worker's) retries.
        await execute(connection(), "UPDATE daily_report SET next_attempt_at = $1", _past())
        worker = Worker(_NoProvider(), **env)
        try:
            [received] = server.inbox.wait_for(1)
        finally:
            worker.stop()
    finally:
        server.stop()
    assert received.recipients == ["ops@example.com"]
    [ledger] = await report_rows()
    assert (ledger.status, ledger.attempts, ledger.last_error) == (ReportStatus.SENT, 2, None)


def _past() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


def _report_status(status: ReportStatus) -> Any:
    async def check() -> bool:
        rows = await report_rows()
        return bool(rows) and rows[0].status is status

    return check


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "report", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def yesterdays_mailing(db: str) -> int:
    from models import MessageStatus
    from tests.support.api import add_audience, finalise
    from tests.support.factories import make_client, make_mailing

    for _ in range(3):
        await make_client()
    noon = yesterday()
    mailing = await make_mailing(
        text="Yesterday's news",
        start_at=noon - timedelta(hours=1),
        end_at=noon + timedelta(hours=1),
        status=MailingStatus.RUNNING,
    )
    await add_audience(mailing)
    await execute(connection(), "UPDATE mailing SET audience_version = 1 WHERE id = $1", mailing.id)
    await finalise(mailing.id, MessageStatus.SENT, 2)
    return mailing.id


async def test_the_command_prints_and_sends_a_days_report(
    smtp: SmtpServer, yesterdays_mailing: int
) -> None:
    day = yesterday().date().isoformat()
    printed = _cli("--date", day, env={"REPORT_TIMEZONE": "UTC"})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith(f"Mailings report for {day} (UTC)\n")
    assert f'Mailing {yesterdays_mailing}: "Yesterday\'s news"' in printed.stdout
    assert "3 total, 2 sent (0 that day)" in printed.stdout

    as_csv = _cli("--date", day, "--format", "csv", env={"REPORT_TIMEZONE": "UTC"})
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["mailing_id"], row["total"], row["pending"]) == (str(yesterdays_mailing), "3", "1")

    # Yesterday is the default day.
    default = _cli(env={"REPORT_TIMEZONE": "UTC"})
    assert default.stdout.splitlines()[0] == printed.stdout.splitlines()[0]

    sent = _cli("--date", day, "--send", env=smtp.env(REPORT_TIMEZONE="UTC"))
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == ""
    [received] = smtp.inbox.wait_for(1)
    assert f"Mailing {yesterdays_mailing}:" in received.part("text/plain")
    # On demand, the daily ledger is left alone.
    assert await report_rows() == []

    refused = _cli("--send", env={"SMTP_HOST": ""})
    assert refused.returncode != 0
    assert "set SMTP_HOST and REPORT_RECIPIENTS" in refused.stderr
    down = _cli("--send", env={**smtp.env(), "SMTP_PORT": "9"})
    assert down.returncode != 0
    assert "not sent: ConnectionRefusedError" in down.stderr
