"""The daily report's HTML, rendered in headless Chromium: what an operator's mail client shows.

Built from figures (no database): the rendering is a pure function of the
report. The screenshot is the README's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from models.mailing import Counts
from tasks.report.figures import DayReport, MailingReport
from tasks.report.html import render_html
from tests.support.admin import chromium, requires_chromium, screenshot

pytestmark = [pytest.mark.slow, requires_chromium]

PUBLIC_URL = "https://mailings.example.com"
SEPARATED = re.compile(r"^\d{1,3}(,\d{3})*$")


def a_day() -> DayReport:
    winter = MailingReport(
        id=12,
        text="Winter <b>sale</b>: 20% off everything in store until Sunday, for our VIP clients",
        status="FINISHED",
        deleted=False,
        start_at=datetime(2026, 1, 10, 6, tzinfo=UTC),
        end_at=datetime(2026, 1, 10, 17, tzinfo=UTC),
        counts=Counts(total=20_000, sent=18_412, failed=1_006, expired=582),
        sent_that_day=18_412,
        failure_reasons=(("HTTP 400: invalid recipient", 911), ("HTTP 400: blocked", 95)),
    )
    spring = MailingReport(
        id=14,
        text="Spring preview",
        status="RUNNING",
        deleted=False,
        start_at=datetime(2026, 1, 10, 15, tzinfo=UTC),
        end_at=datetime(2026, 1, 12, 15, tzinfo=UTC),
        counts=Counts(total=1_250_000, pending=1_030_115, sent=219_885),
        sent_that_day=219_885,
        failure_reasons=(),
    )
    cancelled = MailingReport(
        id=15,
        text="Oops",
        status="CANCELLED",
        deleted=True,
        start_at=datetime(2026, 1, 10, 9, tzinfo=UTC),
        end_at=datetime(2026, 1, 10, 10, tzinfo=UTC),
        counts=Counts(total=300, cancelled=300),
        sent_that_day=0,
        failure_reasons=(),
    )
    mailings = (winter, spring, cancelled)
    totals = Counts()
    for mailing in mailings:
        totals += mailing.counts
    return DayReport(
        day=date(2026, 1, 10),
        timezone="Europe/Moscow",
        generated_at=datetime(2026, 1, 11, 5, tzinfo=UTC),
        mailings=mailings,
        failure_reasons=winter.failure_reasons,
        totals=totals,
    )


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 800, "height": 900})
    # An email's HTML reaches nothing outside it: no request may leave the page.
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    yield page
    await context.close()
    assert [url for url in requests if not url.startswith("about:")] == []


async def test_the_email_renders_as_a_transactional_email(page: Page) -> None:
    await page.set_content(render_html(a_day(), PUBLIC_URL))
    # Nothing a mail client would strip: no style sheet, no class, no script.
    assert await page.locator("style, link, script, [class]").count() == 0

    # Each mailing links to its page on the admin UI.
    for mailing_id in (12, 14, 15):
        link = page.locator(f"#mailing-{mailing_id} a")
        await expect(link).to_have_attribute("href", f"{PUBLIC_URL}/#/mailings/{mailing_id}")
        await expect(link).to_have_text(f"Mailing {mailing_id}")
    # The text is shown as text.
    await expect(page.locator("#mailing-12")).to_contain_text("Winter <b>sale</b>")

    # Numbers: right-aligned, with thousands separators.
    counts = page.locator("[data-count]")
    assert await counts.count() >= 20
    for cell in await counts.all():
        assert SEPARATED.match(await cell.inner_text())
        assert await cell.evaluate("el => getComputedStyle(el).textAlign") == "right"
    await expect(page.locator("#mailing-14 [data-count=pending]")).to_have_text("1,030,115")
    await expect(page.locator("#mailing-12 [data-count=total]")).to_have_text("20,000")
    # Right-aligned: the numbers of a column end where their heading ends.
    total = await page.locator("#mailing-12 [data-count=total]").bounding_box()
    sent = await page.locator("#mailing-12 [data-count=sent]").bounding_box()
    assert total is not None
    assert sent is not None
    assert total["x"] + total["width"] < sent["x"] + sent["width"]

    # The delivery rate as a bar: 18,412 of 20,000 decided = 92.1 %.
    await expect(page.locator("#mailing-12")).to_contain_text("92.1%")
    bar = page.locator("#mailing-12 [data-bar=delivered]")
    bar_box = await bar.bounding_box()
    track_box = await bar.locator("xpath=ancestor::table[1]").bounding_box()
    assert bar_box is not None
    assert track_box is not None
    assert bar_box["width"] / track_box["width"] == pytest.approx(0.92, abs=0.02)
    # A mailing with nothing decided has no bar filled and says so.
    await expect(page.locator("#mailing-15 [data-bar=delivered]")).to_have_count(0)
    await expect(page.locator("#mailing-15")).to_contain_text("n/a")
    await expect(page.locator("#mailing-15")).to_contain_text("CANCELLED (deleted)")

    # It fits the usual 640 px of an email.
    width = await page.locator("body > table table").first.evaluate("el => el.scrollWidth")
    assert width <= 640
    await screenshot(page, "daily-report-email", full_page=True)


async def test_without_a_public_url_nothing_links(page: Page) -> None:
    await page.set_content(render_html(a_day(), None))
    assert await page.locator("a").count() == 0
    await expect(page.locator("#mailing-12")).to_contain_text("Mailing 12")
