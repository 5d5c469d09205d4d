"""The admin page's parts of issue 23 in headless Chromium: opt-outs, idempotency keys, history."""

from __future__ import annotations

import pytest
from playwright.async_api import Dialog, Request, expect

from tests.conftest import GraphQLClient
from tests.support.admin import Watched, admin_page, chromium_browser, requires_chromium  # noqa: F401 (fixtures)
from tests.support.factories import make_client

pytestmark = [pytest.mark.slow, requires_chromium]


async def accept(dialog: Dialog) -> None:
    await dialog.accept()


async def test_opt_out_and_back_in_with_a_key_on_every_mutation(admin: Watched) -> None:
    page = admin.page
    await make_client(phone="79031112201")
    await make_client(phone="79031112202")
    mutations: list[Request] = []
    page.on(
        "request",
        lambda r: (
            mutations.append(r)
            if r.method == "POST" and "mutation" in (r.post_data or "")
            else None
        ),
    )
    page.on("dialog", accept)
    await page.goto("/#/clients")
    table = page.locator("#clients-table tbody tr")
    await expect(table).to_have_count(2)
    await table.nth(1).get_by_role("button", name="Opt out").click()
    await expect(table.nth(1).locator("td.opted-out time")).to_have_count(1)
    await page.select_option("#client-opted-out-filter", "yes")
    await expect(table).to_have_count(1)
    await expect(table.nth(0).locator("td").nth(1)).to_have_text("79031112202")
    await table.nth(0).get_by_role("button", name="Opt in").click()
    await expect(table).to_have_count(0)
    await page.select_option("#client-opted-out-filter", "no")
    await expect(table).to_have_count(2)
    keys = [r.headers.get("idempotency-key") for r in mutations]
    assert len(keys) == 2
    assert all(keys)
    assert len(set(keys)) == 2


async def test_the_mailing_page_shows_its_history(admin: Watched, gql: GraphQLClient) -> None:
    page = admin.page
    created = await gql.execute(
        """mutation { createMailing(input: {text: "Hi", startAt: "2099-01-01T00:00:00Z",
        endAt: "2099-01-02T00:00:00Z"}) { ... on Mailing { id } } }"""
    )
    mailing_id = created["createMailing"]["id"]
    await gql.execute(f'mutation {{ pauseMailing(id: "{mailing_id}") {{ __typename }} }}')
    await page.goto(f"/#/mailings/{mailing_id}")
    history = page.locator("#history-table tbody tr")
    await expect(history).to_have_count(2)
    await expect(history.nth(0).locator("td").nth(2)).to_have_text("pauseMailing")
    await expect(history.nth(0).locator("td").nth(3)).to_contain_text(
        'status: "SCHEDULED" → "PAUSED"'
    )
    await expect(history.nth(1).locator("td").nth(2)).to_have_text("createMailing")
    await expect(page.locator("#opted-out-clients")).to_have_text("none left out")
