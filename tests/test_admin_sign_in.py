"""Signing in to the admin page: an API token kept for the tab, or OAuth2 with PKCE.

A viewer signed in through the provider sees no button the API would refuse.
A session from the provider is renewed before its token expires, or ends
saying so, with one click to sign in again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import jwt
import pytest
from playwright.async_api import Browser, Page, Route, expect

from graphql_api.ids import Kind, global_id
from tests.conftest import serve_api, stop_process
from tests.support.admin import (
    AUDIENCE,
    PkceProvider,
    Watched,
    chromium,
    download_by_clicking,
    open_page,
    requires_chromium,
    screenshot,
)
from tests.support.engine import utcnow, wait_until
from tests.support.factories import make_client, make_mailing

pytestmark = [pytest.mark.slow, requires_chromium]

API_TOKEN = "admin-page-token-5150"
CLIENT_ID = "mailings-admin"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def token_api(database: str) -> Iterator[str]:
    url, proc = serve_api({"API_TOKEN": API_TOKEN}, log_name="api-tok")
    yield url
    stop_process(proc)


@pytest.fixture(scope="module")
def provider() -> Iterator[PkceProvider]:
    idp = PkceProvider(CLIENT_ID)
    yield idp
    idp.close()


@pytest.fixture(scope="module")
def oidc_api(database: str, provider: PkceProvider) -> Iterator[str]:
    env = {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_CLIENT_ID": CLIENT_ID,
    }
    url, proc = serve_api(env, log_name="api-oidc")
    yield url
    stop_process(proc)


@pytest.fixture
def sessions(provider: PkceProvider) -> Iterator[PkceProvider]:
    """The provider, put back as it was after a test that shortens its tokens."""
    yield provider
    provider.reset()


@pytest.fixture
async def watched_pages(browser: Browser, db: str) -> AsyncIterator[list[Watched]]:
    pages: list[Watched] = []
    yield pages
    for watched in pages:
        await watched.context.close()
    for watched in pages:
        watched.assert_clean()


async def test_api_token_is_asked_once_and_kept_for_the_tab(
    browser: Browser, token_api: str, watched_pages: list[Watched]
) -> None:
    tomorrow = utcnow() + timedelta(days=1)
    mailing = await make_mailing(
        text="Scheduled", start_at=tomorrow, end_at=tomorrow + timedelta(hours=2)
    )
    watched = await open_page(browser, token_api)
    watched_pages.append(watched)
    page = watched.page
    await page.goto("/")
    await expect(page.locator("h1")).to_have_text("Sign in")
    await expect(page.locator("label[for=token]")).to_have_text("API token")
    await expect(page.locator("#oidc-sign-in")).to_have_count(0)
    await page.fill("#token", "guessed")
    await page.click("#token-form button")
    await expect(page.locator("#sign-in-error")).to_have_text("That token was refused.")
    await screenshot(page, "sign-in")

    await page.fill("#token", API_TOKEN)
    await page.click("#token-form button")
    await expect(page.locator("h1")).to_have_text("Mailings")
    await expect(page.locator("#who")).to_have_text("API token")
    await expect(page.locator("#new-mailing")).to_be_visible()
    stored = await page.evaluate("() => sessionStorage.getItem('mailings.token')")
    assert API_TOKEN in stored
    assert await page.evaluate("() => localStorage.getItem('mailings.token')") is None

    # Downloads go through a signed link, asked for with it: the browser sends no header.
    assert "Scheduled" in await download_by_clicking(page, "#statistics-csv")

    # The subscription's connection_init carries the token too.
    await page.click(f"#mailings-table tr[data-id='{global_id(Kind.MAILING, mailing.id)}'] a")
    await expect(page.locator("#live")).to_have_text("● live")
    await page.reload()
    await expect(page.locator("h1")).to_have_text(f"Mailing {mailing.id}")

    other_tab = await watched.context.new_page()
    await other_tab.goto("/")
    await expect(other_tab.locator("h1")).to_have_text("Sign in")
    await other_tab.close()

    await page.click("#sign-out")
    await expect(page.locator("h1")).to_have_text("Sign in")
    assert await page.evaluate("() => sessionStorage.getItem('mailings.token')") is None


async def test_a_refused_token_brings_the_sign_in_back(
    browser: Browser, token_api: str, watched_pages: list[Watched]
) -> None:
    watched = await open_page(browser, token_api)
    watched_pages.append(watched)
    page = watched.page
    await page.goto("/")
    await page.evaluate(
        """() => sessionStorage.setItem(
            'mailings.token', JSON.stringify({token: 'revoked', via: 'token'}))"""
    )
    await page.reload()
    await expect(page.locator("h1")).to_have_text("Sign in")
    await expect(page.locator("#sign-in-error")).to_contain_text("sign in again")


async def test_a_page_still_starting_leaves_a_token_stored_after_it_loaded_alone(
    browser: Browser, token_api: str, watched_pages: list[Watched]
) -> None:
    """The race behind the test above: the token arrives while the page waits for its config.

    The first document must not take it up (and erase it on the 401): the
    one after the reload relies on it to say why the sign-in is back.
    """
    watched = await open_page(browser, token_api)
    watched_pages.append(watched)
    page = watched.page
    config_asked = asyncio.Event()
    release_config = asyncio.Event()
    graphql_calls: list[str] = []
    page.on(
        "request", lambda r: graphql_calls.append(r.url) if r.url.endswith("/graphql") else None
    )

    async def hold(route: Route) -> None:
        config_asked.set()
        await release_config.wait()
        await route.continue_()

    await page.route("**/admin/config.json", hold)
    await page.goto("/")
    await config_asked.wait()
    await page.evaluate(
        """() => sessionStorage.setItem(
            'mailings.token', JSON.stringify({token: 'revoked', via: 'token'}))"""
    )
    release_config.set()
    await expect(page.locator("h1")).to_have_text("Sign in")
    assert graphql_calls == []  # it started signed out, as the tab was when it loaded
    await expect(page.locator("#sign-in-error")).to_be_hidden()
    await page.unroute("**/admin/config.json")

    await page.reload()
    await expect(page.locator("#sign-in-error")).to_contain_text("sign in again")


async def test_oidc_sign_in_with_pkce_and_roles(
    browser: Browser, oidc_api: str, provider: PkceProvider, watched_pages: list[Watched]
) -> None:
    tomorrow = utcnow() + timedelta(days=1)
    mailing = await make_mailing(
        text="Look, don't touch", start_at=tomorrow, end_at=tomorrow + timedelta(hours=2)
    )
    await make_client(phone="79001234567", tag="vip")
    watched = await open_page(browser, oidc_api)
    watched_pages.append(watched)
    page = watched.page
    provider.role = "viewer"
    await page.goto("/#/clients")
    await expect(page.locator("h1")).to_have_text("Sign in")
    await page.click("#oidc-sign-in")
    await expect(page.locator("h1")).to_have_text("Clients")
    # Back where the operator was, with the code gone from the address bar.
    assert page.url == f"{oidc_api}/#/clients"

    authorize = provider.authorize_requests[-1]
    assert authorize["response_type"] == "code"
    assert authorize["client_id"] == CLIENT_ID
    assert authorize["redirect_uri"] == f"{oidc_api}/"
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["scope"] == "openid profile email"
    assert authorize["audience"] == AUDIENCE
    exchange = provider.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code"
    assert len(exchange["code_verifier"]) >= 43

    # A viewer: the API would refuse every mutation, so no button offers one.
    await expect(page.locator("#who")).to_have_text("ada · viewer")
    await expect(page.locator("#clients-table tbody tr")).to_have_count(1)
    await expect(page.locator("#new-client")).to_have_count(0)
    await expect(page.locator("#clients-table button")).to_have_count(0)
    await page.click("nav >> text=Mailings")
    row = page.locator(f"#mailings-table tr[data-id='{global_id(Kind.MAILING, mailing.id)}']")
    await expect(row).to_be_visible()
    await expect(row.locator("[data-action]")).to_have_count(0)
    await expect(page.locator("#new-mailing")).to_have_count(0)
    await screenshot(page, "viewer")
    await row.locator("a").first.click()
    await expect(page.locator("#live")).to_have_text("● live")
    await expect(page.locator("[data-action]")).to_have_count(0)
    await page.goto(f"{oidc_api}/#/mailings/new")
    await expect(page).to_have_url(re.compile(r"#/mailings$"))

    await page.click("#sign-out")
    provider.role = "operator"
    await page.click("#oidc-sign-in")
    await expect(page.locator("#who")).to_have_text("ada")
    await expect(page.locator("#new-mailing")).to_be_visible()
    row = page.locator(f"#mailings-table tr[data-id='{global_id(Kind.MAILING, mailing.id)}']")
    # A scheduled mailing: edit, pause, cancel, delete.
    await expect(row.locator("[data-action]")).to_have_count(4)
    await row.locator("[data-action=pause]").click()
    await expect(row.locator(".badge")).to_have_text("PAUSED")


async def test_a_forged_return_from_the_provider_is_refused(
    browser: Browser, oidc_api: str, provider: PkceProvider, watched_pages: list[Watched]
) -> None:
    watched = await open_page(browser, oidc_api)
    watched_pages.append(watched)
    page = watched.page
    before = len(provider.token_requests)
    await page.goto("/?code=stolen&state=made-up")
    await expect(page.locator("#sign-in-error")).to_have_text(
        "Sign-in failed: the answer did not match this sign-in"
    )
    assert len(provider.token_requests) == before
    assert "code=" not in page.url


async def stored_token(page: Page) -> str:
    saved = await page.evaluate("() => sessionStorage.getItem('mailings.token')")
    token: str = json.loads(saved)["token"]
    return token


async def test_an_oidc_session_is_renewed_before_its_token_expires(
    browser: Browser, oidc_api: str, sessions: PkceProvider, watched_pages: list[Watched]
) -> None:
    tomorrow = utcnow() + timedelta(days=1)
    mailing = await make_mailing(
        text="Still here", start_at=tomorrow, end_at=tomorrow + timedelta(hours=2)
    )
    sessions.role = "operator"
    sessions.lifetime = 10
    sessions.refresh = True
    watched = await open_page(browser, oidc_api)
    watched_pages.append(watched)
    page = watched.page
    await page.goto("/#/clients")
    await page.click("#oidc-sign-in")
    await expect(page.locator("h1")).to_have_text("Clients")
    first = await stored_token(page)
    first_expiry = jwt.decode(first, options={"verify_signature": False})["exp"]

    async def renewed() -> bool:
        return sessions.renewals() >= 1

    await wait_until(renewed, timeout=60)
    # Once the first token is refused, the page carries on with a renewed one:
    # its queries, and its subscriptions on a connection opened with it.
    await asyncio.sleep(max(0.0, first_expiry + 1 - time.time()))
    async with httpx.AsyncClient(base_url=oidc_api) as http:
        refused = await http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Authorization": f"Bearer {first}"},
        )
    assert refused.status_code == 401
    await page.click("nav >> text=Mailings")
    await page.click(f"#mailings-table tr[data-id='{global_id(Kind.MAILING, mailing.id)}'] a")
    await expect(page.locator("h1")).to_have_text(f"Mailing {mailing.id}")
    await expect(page.locator("#live")).to_have_text("\u25cf live")
    await expect(page.locator("#who")).to_have_text("ada")
    assert await stored_token(page) != first
    assert all(
        form["client_id"] == CLIENT_ID
        for form in sessions.token_requests
        if form.get("grant_type") == "refresh_token"
    )

    # The provider stops renewing it: the session ends, and says so.
    sessions.refresh_refused = True
    await expect(page.locator("h1")).to_have_text("Your session ended", timeout=40_000)
    await expect(page.locator("#sign-in-error")).to_contain_text("It ended at")


async def test_an_oidc_session_without_renewal_warns_then_ends_with_one_click_back(
    browser: Browser, oidc_api: str, sessions: PkceProvider, watched_pages: list[Watched]
) -> None:
    sessions.role = "operator"
    sessions.lifetime = 24  # no refresh token: a warning for the last 12 s
    watched = await open_page(browser, oidc_api)
    watched_pages.append(watched)
    page = watched.page
    await page.goto("/#/clients")
    await page.click("#oidc-sign-in")
    await expect(page.locator("h1")).to_have_text("Clients")
    notice = page.locator("#notice")
    await expect(notice).to_be_hidden()
    await expect(notice).to_be_visible(timeout=40_000)
    await expect(notice).to_contain_text(re.compile(r"Your session ends at \S+ \S+ UTC\+3\."))
    await expect(notice.locator("#sign-in-again")).to_be_visible()
    await screenshot(page, "session-ending")

    await expect(page.locator("h1")).to_have_text("Your session ended", timeout=40_000)
    await expect(page.locator("#sign-in-error")).to_contain_text(
        re.compile(r"It ended at \S+ \S+ UTC\+3\. Sign in again")
    )
    await expect(notice).to_be_hidden()
    await screenshot(page, "session-ended")

    sessions.lifetime = 600
    await page.click("#oidc-sign-in")
    await expect(page.locator("h1")).to_have_text("Clients")
    assert page.url == f"{oidc_api}/#/clients"
    await expect(page.locator("#who")).to_have_text("ada")
