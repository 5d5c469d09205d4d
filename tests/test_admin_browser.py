"""The admin page in headless Chromium against a real API, worker and simulator.

An operator creates clients (one by hand, the rest from a CSV file), sees
the API's validation errors where they belong, creates a mailing, and
watches it go out live until it is FINISHED, or cancels one half-way and
reads what happened to every message; the screenshots taken on the way are
the README's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Dialog, FilePayload, Page, Request, Route, expect

from graphql_api.ids import Kind, global_id
from models import MailingStatus, MessageStatus
from tests.conftest import GraphQLClient
from tests.support.admin import (  # noqa: F401 (fixtures)
    Watched,
    admin_page,
    chromium_browser,
    download_by_clicking,
    requires_chromium,
    screenshot,
)
from tests.support.api import key
from tests.support.engine import Simulator, Worker, add_clients, stats_of, utcnow
from tests.support.factories import BULK_PHONES, make_client, make_mailing

pytestmark = [pytest.mark.slow, requires_chromium]

CSV_WITH_MISTAKES = (
    "phone,tag,timezone\n"
    "79050000000,vip,Europe/Moscow\n"
    "89050000001,vip,Europe/Moscow\n"  # line 3: not a 7XXXXXXXXXX phone
    "79050000002,vip,Asia/Tokyo\n"
    "79050000003,vip,Moon/Base\n"  # line 5: no such time zone
    "79050000000,vip,UTC\n"  # line 6: the phone of line 2 again
    "79001112233,,UTC\n"  # line 7: the phone of the client made by hand
)


def rows(first: int, last: int, total: int) -> str:
    """A table's count of rows shown, as the page writes it (with an en dash)."""
    return f"{first:,}\u2013{last:,} of {total:,}"


def counts_in(text: str) -> list[int]:
    """The counts in a text of the page, written with thousands separators (en-GB)."""
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


# An instant as the page shows it: the operator's wall clock and its offset.
SHOWN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC\+3$")


def good_csv(count: int) -> str:
    """As a spreadsheet in a comma-decimal locale saves it: semicolons."""
    rows = [
        f"{79050000000 + n};vip;{'Europe/Moscow' if n % 2 else 'Asia/Tokyo'}" for n in range(count)
    ]
    return "phone;tag;timezone\n" + "\n".join(rows) + "\n"


@pytest.fixture
async def sim(db: str) -> AsyncIterator[Simulator]:
    # Slow enough to watch, and rejecting some messages for good.
    simulator = Simulator("--seed", "11", "--latency", "300", "--reject-rate", "0.3")
    yield simulator
    await simulator.close()


@pytest.fixture
async def worker(sim: Simulator) -> AsyncIterator[Worker]:
    w = Worker(sim, SEND_CONCURRENCY="2")
    yield w
    w.stop()


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def create_client_by_hand(page: Page) -> None:
    await page.click("#new-client")
    form = page.locator("#client-form")
    await form.locator("[name=phone]").fill("8900")
    await form.locator("[name=tag]").fill("vip")
    await form.locator("[name=timezone]").fill("Mars/Olympus")
    await form.locator("button[type=submit]").click()
    phone_error = form.locator(".field[data-field='input.phone'] .field-error")
    await expect(phone_error).to_have_text("must be 11 digits starting with 7 (7XXXXXXXXXX)")
    await expect(form.locator(".field[data-field='input.timezone'] .field-error")).to_contain_text(
        "IANA time zone"
    )
    await expect(form.locator(".field[data-field='input.tag'] .field-error")).to_be_hidden()
    await screenshot(page, "client-validation")
    await form.locator("[name=phone]").fill("79001112233")
    await form.locator("[name=timezone]").fill("Europe/Moscow")
    await form.locator("button[type=submit]").click()
    await expect(form).to_have_count(0)
    await expect(page.locator("#clients-table tbody tr")).to_have_count(1)
    await expect(page.locator("#clients-table tbody tr td").nth(1)).to_have_text("79001112233")
    await expect(page.locator("#clients-table tbody tr td").nth(2)).to_have_text("900")


async def import_clients(page: Page) -> None:
    await page.click("text=Import CSV")
    upload: FilePayload = {
        "name": "clients.csv",
        "mimeType": "text/csv",
        "buffer": CSV_WITH_MISTAKES.encode(),
    }
    await page.set_input_files("#csv-file", files=upload)
    await expect(page.locator("#import-rows tbody tr")).to_have_count(6)
    await expect(page.locator("#import-go")).to_have_text("Import 6 clients")
    await page.click("#import-go")
    # Every problem of every row in one answer, by line, and said once.
    await expect(page.locator("#import-summary")).to_have_text(
        "Nothing was imported: 4 problems in 4 rows, listed by line below."
    )
    report = page.locator("#import-errors tbody tr")
    await expect(report).to_have_count(4)
    await expect(report.nth(0).locator("td")).to_have_text(
        ["3", "89050000001", "phone", "must be 11 digits starting with 7 (7XXXXXXXXXX)"]
    )
    await expect(report.nth(1).locator("td").nth(0)).to_have_text("5")
    await expect(report.nth(1).locator("td").nth(2)).to_have_text("timezone")
    await expect(report.nth(2).locator("td")).to_have_text(
        ["6", "79050000000", "phone", "repeats the phone of line 2"]
    )
    await expect(report.nth(3).locator("td")).to_have_text(
        ["7", "79001112233", "phone", "already in use by another client"]
    )
    await expect(page.locator("#import-bad-rows tbody tr.row-invalid")).to_have_count(4)
    await screenshot(page, "import-errors", full_page=True)
    await page.fill("#csv-text", good_csv(30))
    await expect(page.locator("#import-go")).to_have_text("Import 30 clients")
    await page.click("#import-go")
    await expect(page.locator("#import-done")).to_contain_text("Imported 30 clients")


async def browse_clients(page: Page) -> None:
    await page.goto("/#/clients")
    count = page.locator("#clients-count")
    await expect(count).to_have_text(rows(1, 25, 31))
    await page.click("text=Next →")
    await expect(count).to_have_text(rows(26, 31, 31))
    await page.fill("#client-filters [name=timezone]", "Asia/Tokyo")
    await expect(count).to_have_text(rows(1, 15, 15))
    await page.fill("#client-filters [name=timezone]", "")
    await page.fill("#client-filters [name=codes]", "900")
    await expect(count).to_have_text(rows(1, 1, 1))
    await page.click("#client-filters button")
    await page.fill("#client-filters [name=tags]", "vip")
    await expect(count).to_have_text(rows(1, 25, 31))
    await screenshot(page, "clients")


async def test_a_slow_answer_never_replaces_the_last_filters(admin: Watched) -> None:
    # The operator types on while the answer to an earlier filter is still on
    # its way; whichever answer comes last, the table is the last filter's.
    # (It once showed the earlier one: each field asked on its own, and the
    # answers were shown in the order they came.)
    await add_clients(30)
    await make_client(operator_code="916")
    page = admin.page
    await page.goto("/#/clients")
    count = page.locator("#clients-count")
    await expect(count).to_have_text(rows(1, 25, 31))

    held, release = asyncio.Event(), asyncio.Event()

    def asks_for_916(request: Request) -> bool:
        return "916" in (request.post_data or "")

    async def hold_916(route: Route) -> None:
        if asks_for_916(route.request):
            held.set()
            await release.wait()
        await route.continue_()

    await page.route("**/graphql", hold_916)
    await page.fill("#client-filters [name=codes]", "916")
    await held.wait()
    await page.fill("#client-filters [name=codes]", "900")
    await expect(count).to_have_text(rows(1, 25, 30))

    async with page.expect_event("requestfinished", asks_for_916):
        release.set()
    # Whatever the page does with that answer, it does in its next tasks.
    await page.evaluate("() => new Promise((done) => setTimeout(done, 100))")
    assert await count.inner_text() == rows(1, 25, 30)
    assert await page.locator("#clients-table tbody tr").count() == 25


async def follow_until_finished(
    page: Page, progress: str, shot: str, timeout: float = 60
) -> set[str]:
    """The texts ``progress`` showed ("12 of 31 done") while the page waited for FINISHED.

    The page is never reloaded meanwhile: whatever changed came over the
    subscription. A screenshot is taken once the mailing is well under way.
    """
    seen: set[str] = set()
    finished = page.locator(".badge[data-status=FINISHED]")
    deadline = time.monotonic() + timeout
    shot_taken = False
    while not await finished.count():
        assert time.monotonic() < deadline, f"not FINISHED after {timeout}s; saw {seen}"
        text = await page.locator(progress).first.inner_text()
        seen.add(text)
        done, total = counts_in(text)[:2]
        if not shot_taken and total * 0.4 <= done < total:
            await screenshot(page, shot, full_page=True)
            shot_taken = True
        await page.wait_for_timeout(100)
    return seen


async def test_operator_sends_a_mailing_from_clients_to_finished(
    admin: Watched, worker: Worker
) -> None:
    page = admin.page
    await page.goto("/")
    await expect(page.locator("h1")).to_have_text("Mailings")
    await expect(page.locator(".empty")).to_contain_text("No mailings yet")
    await page.click("nav >> text=Clients")
    await create_client_by_hand(page)
    await import_clients(page)
    await browse_clients(page)

    await page.goto("/#/mailings/new")
    await page.fill("[name=text]", "Spring sale: 20% off for our VIPs until Sunday.")
    await expect(page.locator("#text-count")).to_have_text("47 / 1000")
    await page.fill("[name=tags]", "vip")
    await expect(page.locator("#audience")).to_have_text("Matches 31 clients now")
    await page.fill("[name=tags]", "vip, nobody")
    await expect(page.locator("#audience")).to_have_text("Matches 31 clients now")
    await page.fill("[name=operatorCodes]", "905")
    await expect(page.locator("#audience")).to_have_text("Matches 30 clients now")
    await page.fill("[name=operatorCodes]", "")
    await expect(page.locator("#audience")).to_have_text("Matches 31 clients now")
    await screenshot(page, "mailing-form")
    await page.click("#save-mailing")

    await page.wait_for_url(re.compile(r"#/mailings/(?!new$)[^/]+$"))
    mailing_id = page.url.rsplit("/", 1)[1]
    # The address holds the API's opaque id; the heading, the key a person reads.
    await expect(page.locator("h1")).to_have_text(f"Mailing {key(mailing_id)}")
    progress = await follow_until_finished(page, "#done-count", "mailing-live")
    # The counts moved while the page stayed open: they came over mailingProgress.
    assert len(progress) >= 2, progress
    await expect(page.locator("#done-count")).to_have_text("31 of 31 done")
    await expect(page.locator("#messages-table tbody tr time").first).to_have_text(SHOWN_TIME)
    await expect(page.locator("#live")).to_have_text("")

    stats = await stats_of(key(mailing_id))
    assert stats["sent"] + stats["failed"] == 31
    assert stats["failed"] > 0
    for status in ("sent", "failed", "pending"):
        await expect(page.locator(f"[data-count={status}]")).to_have_text(str(stats[status]))
    await expect(page.locator("#messages-table tbody tr")).to_have_count(31)
    await expect(page.locator("#messages-table tr[data-status=PENDING]")).to_have_count(0)
    await screenshot(page, "mailing-finished", full_page=True)
    # After a reload the line is the mailing's whole life, read from its timeline.
    await page.reload()
    await expect(page.locator("#timeline-chart .chart-line")).to_have_attribute(
        "aria-label", "Progress over time: 31 of 31 done"
    )

    lines = (await download_by_clicking(page, "#messages-csv")).strip().splitlines()
    assert len(lines) == 1 + 31  # a header, then every message

    await page.select_option("#message-status", "FAILED")
    failed = page.locator("#messages-table tbody tr")
    await expect(failed).to_have_count(stats["failed"])
    for n in range(stats["failed"]):
        row = failed.nth(n)
        await expect(row).to_have_attribute("data-status", MessageStatus.FAILED.value)
        assert int(await row.locator("td").nth(3).inner_text()) >= 1
        assert "400" in await row.locator("td.error-cell").inner_text()
        await expect(row.locator("td").nth(5).locator("time")).to_have_text(SHOWN_TIME)

    await page.click("nav >> text=Mailings")
    row = page.locator(f"#mailings-table tr[data-id='{mailing_id}']")
    await expect(row.locator(".badge")).to_have_text("FINISHED")
    await expect(row.locator(".progress-text")).to_have_text("31 / 31")
    # A finished mailing can only be deleted.
    await expect(row.locator("[data-action]")).to_have_count(1)
    await expect(page.locator(".total-sent strong")).to_have_text(str(stats["sent"]))
    await screenshot(page, "mailings")


MAILING = """query($id: ID!) {
    mailing(id: $id) {
        text startAt endAt status filter { operatorCodes tags } sendWindow { start end }
    }
}"""


async def test_mailing_form_shows_errors_speaks_the_operators_time_and_drives_the_lifecycle(
    admin: Watched, gql: GraphQLClient
) -> None:
    page = admin.page
    await page.goto("/#/mailings/new")
    form = page.locator("#mailing-form")
    # Nothing typed yet is no mistake yet.
    await expect(page.locator("#text-count")).to_have_text("0 / 1000")
    await expect(page.locator("#text-count")).to_have_class("counter")
    # Times read as everywhere on the page: 24-hour ISO, whatever the locale.
    await expect(page.locator("[name=startAt]")).to_have_value(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")
    )
    # Every problem at once: what the page cannot send (a time typed wrong)
    # beside what the API finds.
    await page.fill("[name=startAt]", "1/1/2030 9:00 AM")
    await page.check("[name=windowOn]")
    await page.fill("[name=windowStart]", "9am")
    await page.click("#save-mailing")
    await expect(page.locator("#text-count")).to_have_class("counter over")
    await expect(form.locator(".field[data-field='input.text'] .field-error")).to_be_visible()
    await expect(form.locator(".field[data-field='input.startAt'] .field-error")).to_have_text(
        "must be a date and a 24-hour time, YYYY-MM-DD HH:MM"
    )
    await expect(
        form.locator(".field[data-field='input.sendWindow.start'] .field-error")
    ).to_have_text("must be a 24-hour time, HH:MM")
    await page.uncheck("[name=windowOn]")
    await page.fill("[name=startAt]", "2030-01-01 09:00")
    await page.fill("[name=endAt]", "2029-12-31 09:00")
    await page.fill("[name=text]", "x" * 1001)
    await expect(page.locator("#text-count")).to_have_text("1001 / 1000")
    await expect(page.locator("#text-count")).to_have_class("counter over")
    await page.check("[name=windowOn]")
    await page.fill("[name=windowStart]", "10:00")
    await page.fill("[name=windowEnd]", "10:00")
    await page.click("#save-mailing")
    await expect(form.locator(".field[data-field='input.text'] .field-error")).to_contain_text(
        "1000"
    )
    await expect(form.locator(".field[data-field='input.endAt'] .field-error")).to_have_text(
        "must be later than startAt"
    )
    await expect(
        form.locator(".field[data-field='input.sendWindow'] > .field-error")
    ).to_contain_text("start and end must differ")
    await expect(form.locator(".field[data-field='input.startAt'] .field-error")).to_be_hidden()
    await screenshot(page, "mailing-form-errors", full_page=True)
    assert (await gql.execute("{ mailings { totalCount } }"))["mailings"]["totalCount"] == 0

    await page.fill("[name=text]", "New year, new prices")
    await page.fill("[name=endAt]", "2030-01-02T09:00")  # the ISO "T" is taken too
    await page.fill("[name=windowStart]", "22:00")
    await page.fill("[name=windowEnd]", "06:00")
    await page.click("#save-mailing")
    await page.wait_for_url(re.compile(r"#/mailings/(?!new$)[^/]+$"))
    mailing_id = page.url.rsplit("/", 1)[1]
    await expect(page.locator(".view-head .badge")).to_have_text("SCHEDULED")
    saved = (await gql.execute(MAILING, {"id": mailing_id}))["mailing"]
    # Typed in Europe/Moscow (UTC+3), the browser's zone; the API answers in UTC.
    assert saved["startAt"] == "2030-01-01T06:00:00+00:00"
    assert saved["endAt"] == "2030-01-02T06:00:00+00:00"
    assert saved["sendWindow"] == {"start": "22:00", "end": "06:00"}
    assert saved["filter"] == {"operatorCodes": [], "tags": []}
    # Every time shown carries its zone: the offset, with the zone's name on hover.
    await expect(page.locator("#start-at time")).to_have_text("2030-01-01 09:00 UTC+3")
    await expect(page.locator("#start-at time")).to_have_attribute("title", "Europe/Moscow")
    await expect(page.locator("#end-at time")).to_have_text("2030-01-02 09:00 UTC+3")
    await screenshot(page, "mailing-times")

    # Edit in another zone: the same instants, shown in Tokyo's time; only
    # what changed is sent.
    await page.click("[data-action=edit]")
    await expect(page.locator("[name=startAt]")).to_have_value("2030-01-01 09:00")
    await page.fill("[name=zone]", "Asia/Tokyo")
    await page.locator("[name=zone]").dispatch_event("change")
    await expect(page.locator("[name=startAt]")).to_have_value("2030-01-01 15:00")
    await page.fill("[name=text]", "New year, new prices!")
    await page.fill("[name=endAt]", "2030-01-03T00:00")
    await page.uncheck("[name=windowOn]")
    await page.fill("[name=operatorCodes]", "900, 916")
    await page.click("#save-mailing")
    await page.wait_for_url(re.compile(r"#/mailings/(?!new$)[^/]+$"))
    await expect(page.locator(".details")).to_contain_text("operator codes 900, 916")
    # Shown in the zone chosen last, as the form showed them.
    await expect(page.locator("#start-at time")).to_have_text("2030-01-01 15:00 UTC+9")
    await expect(page.locator("#start-at time")).to_have_attribute("title", "Asia/Tokyo")
    saved = (await gql.execute(MAILING, {"id": mailing_id}))["mailing"]
    assert saved["text"] == "New year, new prices!"
    assert saved["startAt"] == "2030-01-01T06:00:00+00:00"
    assert saved["endAt"] == "2030-01-02T15:00:00+00:00"
    assert saved["sendWindow"] is None
    assert saved["filter"]["operatorCodes"] == ["900", "916"]

    badge = page.locator(".view-head .badge")
    await page.click("[data-action=pause]")
    await expect(badge).to_have_text("PAUSED")
    await expect(page.locator("[data-action=pause]")).to_have_count(0)
    await page.click("[data-action=resume]")
    await expect(badge).to_have_text("SCHEDULED")
    page.once("dialog", accept)
    await page.click("[data-action=cancel]")
    await expect(badge).to_have_text("CANCELLED")
    await expect(page.locator("[data-action]")).to_have_count(1)  # only Delete is left
    assert (await gql.execute(MAILING, {"id": mailing_id}))["mailing"]["status"] == "CANCELLED"
    page.once("dialog", accept)
    await page.click("[data-action=delete]")
    await page.wait_for_url(re.compile(r"#/mailings$"))
    await expect(page.locator(".empty")).to_contain_text("No mailings yet")
    assert (await gql.execute(MAILING, {"id": mailing_id}))["mailing"] is None


async def test_client_edit_and_delete(admin: Watched, gql: GraphQLClient) -> None:
    await add_clients(2, tag="old")
    page = admin.page
    await page.goto("/#/clients")
    # Zone suggestions are the API's names (timeZones), not the browser's older ones.
    zones = page.locator("#zones option")
    await expect(zones.and_(page.locator("[value='Asia/Kolkata']"))).to_have_count(1)
    await expect(zones.and_(page.locator("[value='Asia/Calcutta']"))).to_have_count(0)
    first = page.locator("#clients-table tbody tr").first
    await first.locator("text=Edit").click()
    form = page.locator("#client-form")
    await expect(form.locator("[name=phone]")).to_have_value(str(BULK_PHONES))
    await form.locator("[name=phone]").fill(str(BULK_PHONES + 1))  # the other client's
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".field[data-field='input.phone'] .field-error")).to_have_text(
        "already in use by another client"
    )
    await form.locator("[name=phone]").fill("79160000000")
    await form.locator("[name=operatorCode]").fill("")
    await form.locator("[name=tag]").fill("new")
    await form.locator("button[type=submit]").click()
    await expect(form).to_have_count(0)
    await expect(first.locator("td").nth(1)).to_have_text("79160000000")
    await expect(first.locator("td").nth(2)).to_have_text("916")
    await expect(first.locator("td").nth(3)).to_have_text("new")
    await expect(first.locator("td time")).to_have_text(SHOWN_TIME)
    page.once("dialog", accept)
    await first.locator("text=Delete").click()
    await expect(page.locator("#clients-table tbody tr")).to_have_count(1)
    clients = (await gql.execute("{ clients { edges { node { phone tag } } } }"))["clients"]
    kept = {"phone": str(BULK_PHONES + 1), "tag": "old"}
    assert [edge["node"] for edge in clients["edges"]] == [kept]


async def test_list_shows_each_mailings_progress_live(
    admin: Watched, worker: Worker, gql: GraphQLClient
) -> None:
    await add_clients(24)
    page = admin.page
    await page.goto("/#/mailings")
    await expect(page.locator(".empty")).to_be_visible()
    created: dict[str, Any] = await gql.execute(
        """mutation($input: MailingInput!) { createMailing(input: $input) {
            ... on Mailing { id } } }""",
        {
            "input": {
                "text": "Live",
                "startAt": (utcnow() + timedelta(hours=1)).isoformat(),
                "endAt": (utcnow() + timedelta(hours=2)).isoformat(),
            }
        },
    )
    mailing_id = created["createMailing"]["id"]
    await page.reload()
    row = page.locator(f"#mailings-table tr[data-id='{mailing_id}']")
    await expect(row.locator(".badge")).to_have_text("SCHEDULED")
    await expect(row.locator("time").first).to_have_text(SHOWN_TIME)
    # Seen waiting, then moved to now: a slow page load cannot miss SCHEDULED.
    moved = await gql.execute(
        """mutation($id: ID!, $input: MailingPatch!) { updateMailing(id: $id, input: $input) {
            __typename } }""",
        {"id": mailing_id, "input": {"startAt": utcnow().isoformat()}},
    )
    assert moved["updateMailing"]["__typename"] == "Mailing", moved
    seen = await follow_until_finished(
        page, f"tr[data-id='{mailing_id}'] .progress-text", "mailings-live"
    )
    assert len(seen) >= 3, seen  # 0 / 0 when scheduled, then counts climbing
    await expect(row.locator(".progress-text")).to_have_text("24 / 24")
    stats = await stats_of(key(mailing_id))
    assert stats["pending"] == 0
    assert stats["sent"] > 0
    await expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "24")
    # The totals above the list were read when nothing was sent, and follow too.
    for status in ("sent", "failed", "pending"):
        await expect(page.locator(f".total-{status} strong")).to_have_text(str(stats[status]))


async def test_a_running_mailing_s_buttons_leave_its_text_room(admin: Watched) -> None:
    # Its four buttons once squeezed the text column to a word a line.
    text = "Spring sale: 20% off everything for our VIP clients until Sunday night."
    mailing = await make_mailing(text=text, status=MailingStatus.RUNNING)
    page = admin.page
    await page.goto("/#/mailings")
    row = page.locator(f"#mailings-table tr[data-id='{global_id(Kind.MAILING, mailing.id)}']")
    await expect(row.locator("[data-action]")).to_have_count(4)
    # Measured in one step: the row's cells are drawn again as its progress
    # comes in. An inline link has one box per line it takes.
    width, lines = await row.evaluate(
        """(tr) => {
            const cell = tr.querySelector("td.text-cell");
            const link = cell.querySelector("a");
            return [cell.getBoundingClientRect().width, link.getClientRects().length];
        }"""
    )
    assert width >= 200, width
    assert lines <= 3, lines


async def test_mailings_are_listed_newest_first(admin: Watched) -> None:
    created = [(await make_mailing(text=f"Mailing {n}")).id for n in range(3)]
    page = admin.page
    await page.goto("/#/mailings")
    rows = page.locator("#mailings-table tbody tr")
    await expect(rows).to_have_count(3)
    shown = [await rows.nth(n).get_attribute("data-id") for n in range(3)]
    assert shown == [global_id(Kind.MAILING, mailing_id) for mailing_id in reversed(created)]


@pytest.fixture
async def steady_sim(db: str) -> AsyncIterator[Simulator]:
    simulator = Simulator("--seed", "5", "--latency", "40", "--reject-rate", "0.02")
    yield simulator
    await simulator.close()


# At most 600 requests a second: 20,000 messages take over 30 s, so a cancel
# made after the first few thousand always finds most of them still pending.
STEADY = {"SEND_CONCURRENCY": "32", "PROVIDER_MAX_RPS": "600"}


async def test_a_cancelled_mailing_says_what_happened_to_every_message(
    admin: Watched, steady_sim: Simulator, gql: GraphQLClient
) -> None:
    await add_clients(20_000)
    created: dict[str, Any] = await gql.execute(
        """mutation($input: MailingInput!) { createMailing(input: $input) {
            ... on Mailing { id } } }""",
        {
            "input": {
                "text": "Twenty thousand",
                "startAt": utcnow().isoformat(),
                "endAt": (utcnow() + timedelta(hours=1)).isoformat(),
            }
        },
    )
    mailing_id = created["createMailing"]["id"]
    page = admin.page
    worker = await asyncio.to_thread(Worker, steady_sim, **STEADY)
    try:
        await page.goto(f"/#/mailings/{mailing_id}")
        summary = page.locator("#done-count")
        deadline = time.monotonic() + 120
        while (done := counts_in(await summary.inner_text())[0]) < 3_000:
            assert time.monotonic() < deadline, f"only {done} done after 120 s"
            await page.wait_for_timeout(100)
        # A cancel stops an audience build in progress (the clients not yet
        # added get no message), so the whole audience is built first: under
        # load, 3,000 done can come before the last chunk.
        while (total := (await stats_of(key(mailing_id)))["total"]) < 20_000:
            assert time.monotonic() < deadline, f"audience {total:,} of 20,000 after 120 s"
            await page.wait_for_timeout(100)
        # Cancelled with the worker stopped: on SQLite a cancel racing the
        # worker's writes can be refused ("database is locked"), which is the
        # engine's business, not this page's.
        await asyncio.to_thread(worker.stop)
        page.once("dialog", accept)
        await page.click("[data-action=cancel]")
        await expect(page.locator(".view-head .badge")).to_have_text("CANCELLED")
        # A worker again: what the stopped one held is finalised, and the
        # stream ends with nothing pending.
        worker = await asyncio.to_thread(Worker, steady_sim, **STEADY)
        await expect(page.locator("#live")).to_have_text("", timeout=60_000)
    finally:
        await asyncio.to_thread(worker.stop)

    stats = await stats_of(key(mailing_id))
    done = stats["sent"] + stats["failed"] + stats["expired"]
    assert stats["pending"] == 0
    assert done >= 3_000
    assert stats["failed"] > 0
    assert stats["cancelled"] >= 5_000
    assert done + stats["cancelled"] == 20_000
    # Not "20000 / 20000 done": what went out, and what was withdrawn.
    await expect(summary).to_have_text(
        f"Cancelled: {done:,} of 20,000 done \u00b7 {stats['cancelled']:,} cancelled"
    )
    await expect(page.locator(".overall .progress")).to_have_attribute("aria-valuenow", str(done))
    for status in ("pending", "sent", "failed", "expired", "cancelled"):
        await expect(page.locator(f"[data-count={status}]")).to_have_text(f"{stats[status]:,}")

    # The chart's labels are whole, however long the number.
    chart = page.locator(".chart-line")
    top = chart.locator("[data-tick=top]")
    await expect(top).to_have_text("20,000")
    box = await chart.bounding_box()
    assert box is not None
    for tick in await chart.locator(".chart-tick").all():
        label = await tick.bounding_box()
        assert label is not None
        assert box["x"] <= label["x"]
        assert label["x"] + label["width"] <= box["x"] + box["width"]
        assert box["y"] <= label["y"]
        assert label["y"] + label["height"] <= box["y"] + box["height"]
    await screenshot(page, "mailing-cancelled")

    await page.click("nav >> text=Mailings")
    row = page.locator(f"#mailings-table tr[data-id='{mailing_id}']")
    await expect(row.locator(".progress-text")).to_have_text(f"{done:,} / 20,000")
    parts = [f"{stats['sent']:,} sent", f"{stats['failed']:,} failed"]
    await expect(row.locator(".progress-breakdown")).to_have_text(
        " \u00b7 ".join([*parts, f"{stats['cancelled']:,} cancelled"])
    )
    await expect(page.locator(".total-cancelled strong")).to_have_text(f"{stats['cancelled']:,}")
    await screenshot(page, "mailings-cancelled")


async def test_back_and_forward_close_the_dialog_of_the_page_left(admin: Watched) -> None:
    page = admin.page
    dialog = page.locator("dialog")
    await page.goto("/#/mailings")
    await expect(page.locator("h1")).to_have_text("Mailings")
    await page.click("nav >> text=Clients")
    await page.click("#new-client")
    await expect(dialog).to_be_visible()
    await screenshot(page, "dialog-open")
    await page.go_back()
    await expect(page.locator("h1")).to_have_text("Mailings")
    await expect(dialog).to_have_count(0)
    await screenshot(page, "dialog-closed-by-back")

    await page.go_forward()
    await expect(page.locator("h1")).to_have_text("Clients")
    await expect(dialog).to_have_count(0)
    await page.click("nav >> text=Mailings")
    await page.go_back()
    await expect(page.locator("h1")).to_have_text("Clients")
    await page.click("#new-client")
    await expect(dialog).to_be_visible()
    await page.go_forward()
    await expect(page.locator("h1")).to_have_text("Mailings")
    await expect(dialog).to_have_count(0)
