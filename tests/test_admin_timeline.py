"""The admin page draws a mailing's whole life from ``Mailing.timeline``, in headless Chromium.

A mailing whose messages went out before the page was ever opened still
shows its whole line; a reload shows the same; a running one shows its rate
and when it should be done, true from the first seconds of a fast send. The
screenshots are the README's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from graphql_api.ids import Kind, global_id
from models import MailingStatus, MessageStatus
from models.db import connection
from models.queries.messages.timeline import answered_since, answered_span
from tests.support.admin import Watched, admin_page, chromium_browser, requires_chromium, screenshot  # noqa: F401 (fixtures)
from tests.support.api import add_audience, finalise
from tests.support.engine import Simulator, Worker, add_clients, utcnow
from tests.support.factories import make_client, make_mailing

pytestmark = [pytest.mark.slow, requires_chromium]


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def mailing_sent_earlier(status: MailingStatus, start: datetime) -> int:
    """1,200 messages answered over the 20 minutes after ``start``."""
    for _ in range(1200):
        await make_client()
    mailing = await make_mailing(
        text="Weekend offer", start_at=start, end_at=start + timedelta(hours=2), status=status
    )
    await add_audience(mailing, due_at=start)
    for n in range(20):
        at = start + timedelta(minutes=n, seconds=30)
        await finalise(mailing.id, MessageStatus.SENT, 40 + n, at=at)
        await finalise(mailing.id, MessageStatus.FAILED, 1 + n % 3, at=at)
    left = 1200 - sum(40 + n + 1 + n % 3 for n in range(20))
    await finalise(mailing.id, MessageStatus.EXPIRED, left, at=start + timedelta(minutes=20))
    return mailing.id


async def test_a_finished_mailing_shows_its_whole_timeline_after_a_reload(
    admin: Watched,
) -> None:
    start = minute(datetime.now(UTC) - timedelta(hours=3))
    mailing_id = await mailing_sent_earlier(MailingStatus.FINISHED, start)
    page = admin.page
    await page.goto(f"/#/mailings/{mailing_id}")
    chart = page.locator("#timeline-chart .chart-line")
    # Nothing happened while the page was open: the line is the timeline's.
    await expect(chart).to_have_attribute("aria-label", "Progress over time: 1,200 of 1,200 done")
    await expect(chart.locator("[data-tick=top]")).to_have_text("1,200")
    # From the first outcome (start + 30 s: its bucket, in the operator's zone) over 20 min.
    shown_start = (start + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M") + " UTC+3"
    await expect(chart.locator("[data-tick=start]")).to_have_text(shown_start)
    # One kind of label at both ends: wall-clock times (the span on hover).
    end = chart.locator("[data-tick=end]")
    await expect(end).to_have_text(re.compile(r"^\d\d:\d\d$"))
    await expect(chart.locator(".tick-end > title")).to_have_text("20 min after the first point")
    await expect(chart.locator(".stroke-sent")).to_have_count(1)
    await expect(chart.locator(".stroke-failed")).to_have_count(1)
    await expect(chart.locator(".stroke-expired")).to_have_count(1)
    await expect(page.locator("#pace")).to_be_hidden()
    await page.reload()
    await expect(chart).to_have_attribute("aria-label", "Progress over time: 1,200 of 1,200 done")
    await expect(chart.locator(".tick-end > title")).to_have_text("20 min after the first point")
    # The line rises through the 20 minutes: many points, not two.
    path = await chart.locator(".stroke-sent").get_attribute("d")
    assert path is not None
    assert path.count("L") >= 20, path
    await screenshot(page, "mailing-timeline", full_page=True)


async def test_a_few_failures_among_many_are_a_visible_line(admin: Watched) -> None:
    # 163 failed of 20,000 once lay under the axis, a fraction of a pixel above
    # it; so do 16 of 2,000.
    start = minute(datetime.now(UTC) - timedelta(hours=1))
    await add_clients(2_000)
    mailing = await make_mailing(
        text="Big", start_at=start, end_at=start + timedelta(hours=2), status=MailingStatus.FINISHED
    )
    await add_audience(mailing, due_at=start)
    for n in range(10):
        at = start + timedelta(minutes=n)
        await finalise(mailing.id, MessageStatus.SENT, 198 + (n < 4), at=at)
        await finalise(mailing.id, MessageStatus.FAILED, 1 + (n < 6), at=at)
    page = admin.page
    await page.goto(f"/#/mailings/{mailing.id}")
    chart = page.locator("#timeline-chart .chart-line")
    await expect(chart).to_have_attribute("aria-label", "Progress over time: 2,000 of 2,000 done")
    axis = float(await chart.locator(".chart-axis").get_attribute("y1") or "nan")
    failed = await chart.locator(".stroke-failed").get_attribute("d")
    assert failed is not None
    last_y = float(failed.rsplit(",", 1)[1])
    assert axis - last_y >= 2, (axis, failed)
    # Drawn over the biggest line, not under it.
    series = await chart.locator(".chart-series").evaluate_all(
        "(paths) => paths.map((p) => p.dataset.series)"
    )
    assert series == ["sent", "failed"]


async def test_a_running_mailing_shows_its_rate_and_when_it_should_be_done(
    admin: Watched,
) -> None:
    # Answers in each of the last 20 minutes, 600 still pending.
    start = minute(datetime.now(UTC)) - timedelta(minutes=20)
    for _ in range(1230):
        await make_client()
    mailing = await make_mailing(
        text="Flash sale", start_at=start, end_at=start + timedelta(hours=5),
        status=MailingStatus.RUNNING,
    )  # fmt: skip
    await add_audience(mailing, due_at=start)
    now = datetime.now(UTC)
    for n in range(20):
        await finalise(mailing.id, MessageStatus.SENT, 29, at=start + timedelta(minutes=n))
        await finalise(mailing.id, MessageStatus.FAILED, 1, at=start + timedelta(minutes=n))
    # The last minute: 30 answers (0.5 a second), so 600 pending take 20 minutes.
    await finalise(mailing.id, MessageStatus.SENT, 30, at=now - timedelta(seconds=10))
    page = admin.page
    await page.goto(f"/#/mailings/{mailing.id}")
    pace = page.locator("#pace")
    await expect(pace).to_contain_text("0.5 messages/s over the last minute")
    await expect(pace).to_contain_text("done in about 20 min")
    await expect(pace).to_contain_text("UTC+3)")
    await expect(page.locator("#timeline-chart [data-tick=top]")).to_have_text("1,230")
    await screenshot(page, "mailing-running-pace", full_page=True)


@pytest.fixture
async def fast_sim(db: str) -> AsyncIterator[Simulator]:
    simulator = Simulator("--seed", "3")  # no latency, no rejections
    yield simulator
    await simulator.close()


def rate_in(pace: str) -> float:
    """The rate a pace text states: "2,704.5 messages/s since the first send ..." -> 2704.5."""
    found = re.match(r"([\d,.]+) messages/s", pace)
    assert found, pace
    return float(found[1].replace(",", ""))


async def test_the_pace_is_true_three_seconds_into_a_fast_send(
    admin: Watched, fast_sim: Simulator
) -> None:
    # Issue 21: 3 s into a send going out at thousands a second the page said
    # "12.5 messages/s": the rate was counted from startAt, which the form
    # rounds down to the minute. Here the send begins 50 s after its startAt.
    await add_clients(30_000)
    start = utcnow() - timedelta(seconds=50)
    mailing = await make_mailing(text="Fast", start_at=start, end_at=start + timedelta(hours=1))
    page = admin.page
    await page.goto(f"/#/mailings/{global_id(Kind.MAILING, mailing.id)}")
    await expect(page.locator("h1")).to_have_text(f"Mailing {mailing.id}")
    pace = page.locator("#pace")
    worker = await asyncio.to_thread(Worker, fast_sim)
    try:
        deadline = time.monotonic() + 120
        while (span := await answered_span(connection(), mailing.id)) is None:
            assert time.monotonic() < deadline, "no answer after 120 s"
            await page.wait_for_timeout(50)
        first = span[0]
        # The rows are stamped by the worker's clock, which is this machine's.
        while utcnow() < first + timedelta(seconds=3):
            await page.wait_for_timeout(50)
        # The page shows the API's figure as of its last read of the timeline, which
        # on a loaded machine can be seconds old while the send is still speeding up:
        # judge the figure of the first read asked for from now on, against what was
        # answered by the instants that bracket the API's clock for it.
        asked_after = utcnow()
        async with page.expect_request(
            lambda request: "query Timeline" in (request.post_data or ""), timeout=60_000
        ) as reading:
            pass
        response = await (await reading.value).response()
        assert response is not None
        stated = (await response.json())["data"]["mailing"]["timeline"]["ratePerSecond"]
        answered_by = utcnow()
        # Then the page says it.
        deadline = time.monotonic() + 30
        while rate_in(shown := await pace.inner_text()) != pytest.approx(stated, rel=0.01):
            assert time.monotonic() < deadline, (shown, stated)
            await page.wait_for_timeout(50)
    finally:
        await asyncio.to_thread(worker.stop)
    real = [
        await answered_since(connection(), mailing.id, first, instant)
        / (instant - first).total_seconds()
        for instant in (asked_after, answered_by)
    ]
    assert real[1] * (answered_by - first).total_seconds() < 30_000, (
        "the send was over before the figure was read: make it bigger"
    )
    assert "since the first send" in shown, shown
    assert "done in about" in shown, shown
    assert min(real) * 0.7 <= rate_in(shown) <= max(real) * 1.3, (shown, real)
