"""GraphiQL in headless Chromium with every other origin blocked: a query and a subscription.

On an open API, behind ``API_TOKEN`` (typed into the Headers editor, or
taken from the admin page's sign-in), and behind OIDC (the admin page's
sign-in with the provider). The screenshots are the README's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, WebSocket, expect

from tests.conftest import GraphQLClient, serve_api, stop_process
from tests.support.admin import (
    AUDIENCE,
    PkceProvider,
    Watched,
    chromium,
    open_page,
    requires_chromium,
    screenshot,
)
from tests.support.engine import utcnow
from tests.support.factories import make_mailing

pytestmark = [pytest.mark.slow, requires_chromium]

TOKEN = "graphiql-browser-token-77e1"
CLIENT_ID = "mailings-admin"
LIST = """query Listed {
  mailings(first: 5) {
    totalCount
    edges { node { id text status startAt } }
  }
}"""
CANCEL = "mutation($id: ID!) { cancelMailing(id: $id) { __typename } }"


def watch_progress(mailing_id: int) -> str:
    return f'subscription Watched {{ mailingProgress(id: "{mailing_id}") {{ status }} }}'


class OwnOriginOnly:
    """Lets a page reach its own origin (and ``also``) only; remembers what else it tried."""

    def __init__(self, origin: str, *also: str) -> None:
        self.origin = origin
        self.allowed = {origin, *also}
        self.blocked: list[str] = []
        self.sockets: list[str] = []

    async def route(self, route: Route) -> None:
        parts = urlsplit(route.request.url)
        if f"{parts.scheme}://{parts.netloc}" in self.allowed:
            await route.continue_()
        else:
            self.blocked.append(route.request.url)
            await route.abort()

    def socket_opened(self, socket: WebSocket) -> None:
        self.sockets.append(socket.url)

    def watch(self, page: Page) -> None:
        page.on("websocket", self.socket_opened)

    def assert_kept(self) -> None:
        assert self.blocked == []
        own = self.origin.replace("http://", "ws://")
        assert self.sockets
        assert all(url.startswith(f"{own}/graphql") for url in self.sockets), self.sockets


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def token_api(database: str) -> Iterator[str]:
    url, proc = serve_api({"API_TOKEN": TOKEN}, log_name="gi-token")
    yield url
    stop_process(proc)


@pytest.fixture(scope="module")
def provider() -> Iterator[PkceProvider]:
    idp = PkceProvider(CLIENT_ID)
    yield idp
    idp.close()


@pytest.fixture(scope="module")
def oidc_api(database: str, provider: PkceProvider) -> Iterator[str]:
    env = {"OIDC_ISSUER": provider.issuer, "OIDC_AUDIENCE": AUDIENCE, "OIDC_CLIENT_ID": CLIENT_ID}
    url, proc = serve_api(env, log_name="gi-oidc")
    yield url
    stop_process(proc)


@pytest.fixture
async def pages(db: str) -> AsyncIterator[list[Watched]]:
    opened: list[Watched] = []
    yield opened
    for watched in opened:
        await watched.context.close()
    for watched in opened:
        watched.assert_clean()


async def offline_page(
    browser: Browser, url: str, pages: list[Watched], *also: str
) -> tuple[Watched, OwnOriginOnly]:
    watched = await open_page(browser, url)
    pages.append(watched)
    gate = OwnOriginOnly(url, *also)
    await watched.context.route("**/*", gate.route)
    watched.context.on("page", gate.watch)
    gate.watch(watched.page)
    return watched, gate


async def ready(page: Page) -> None:
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await expect(page.locator(".graphiql-logo")).to_contain_text("Mailings API")


async def fill(page: Page, editor: str, text: str) -> None:
    """Set an editor's text through CodeMirror (typing would auto-close brackets)."""
    index = {"query": 0, "variables": 1, "headers": 2}[editor]
    await expect(page.locator(".graphiql-container .CodeMirror").nth(index)).to_be_attached()
    await page.evaluate(
        "([index, text]) => document.querySelectorAll('.graphiql-container .CodeMirror')"
        "[index].CodeMirror.setValue(text)",
        [index, text],
    )


async def run(page: Page, operation: str, name: str) -> None:
    await fill(page, "query", operation)
    # GraphiQL reads the operation a moment after an edit; its tab shows the name then.
    await expect(page.locator(".graphiql-tab-active")).to_contain_text(name)
    await page.click(".graphiql-execute-button")


async def query_and_subscribe(page: Page, cancel_with: GraphQLClient, mailing_id: int) -> None:
    await run(page, LIST, "Listed")
    await expect(page.locator(".result-window")).to_contain_text('"text": "Spring sale"')
    await run(page, watch_progress(mailing_id), "Watched")
    await expect(page.locator(".result-window")).to_contain_text('"status": "SCHEDULED"')
    await cancel_with.execute(CANCEL, {"id": str(mailing_id)})
    await expect(page.locator(".result-window")).to_contain_text('"status": "CANCELLED"')


async def scheduled_mailing() -> int:
    tomorrow = utcnow() + timedelta(days=1)
    mailing = await make_mailing(
        text="Spring sale", start_at=tomorrow, end_at=tomorrow + timedelta(hours=2)
    )
    return mailing.id


async def test_graphiql_offline_on_an_open_api(
    browser: Browser, served_api: str, gql: GraphQLClient, pages: list[Watched]
) -> None:
    mailing_id = await scheduled_mailing()
    watched, gate = await offline_page(browser, served_api, pages)
    page = watched.page
    await page.goto("/graphql")
    await ready(page)
    await expect(page.locator(".sign-in-note")).to_have_count(0)
    await run(page, LIST, "Listed")
    await expect(page.locator(".result-window")).to_contain_text('"totalCount": 1')
    await screenshot(page, "graphiql")
    await query_and_subscribe(page, gql, mailing_id)
    gate.assert_kept()


async def test_graphiql_with_the_token_in_its_headers(
    browser: Browser, token_api: str, pages: list[Watched]
) -> None:
    mailing_id = await scheduled_mailing()
    watched, gate = await offline_page(browser, token_api, pages)
    page = watched.page
    await page.goto("/graphql")
    await ready(page)
    await expect(page.locator(".sign-in-note")).to_have_text("token needed: see Headers")
    # The page loaded without the token; the API still wants it, and says so.
    await run(page, LIST, "Listed")
    await expect(page.locator(".result-window")).to_contain_text("Missing or invalid API token")
    await run(page, watch_progress(mailing_id), "Watched")
    await expect(page.locator(".result-window")).to_contain_text("Missing or invalid API token")

    # Spelled as HTTP does; graphql-ws' connectionParams get it as `authorization`.
    await fill(page, "headers", f'{{"Authorization": "Bearer {TOKEN}"}}')
    await screenshot(page, "graphiql-token")
    client = GraphQLClient(token_api, TOKEN)
    try:
        await query_and_subscribe(page, client, mailing_id)
    finally:
        await client.aclose()
    gate.assert_kept()


async def test_graphiql_takes_the_admin_page_sign_in(
    browser: Browser, token_api: str, pages: list[Watched]
) -> None:
    mailing_id = await scheduled_mailing()
    watched, gate = await offline_page(browser, token_api, pages)
    admin = watched.page
    await admin.goto("/")
    await admin.fill("#token", TOKEN)
    await admin.click("#token-form button")
    await expect(admin.locator("#who")).to_have_text("API token")
    async with watched.context.expect_page() as opened:
        await admin.click("#graphiql-link")
    page = await opened.value
    await ready(page)
    await expect(page.locator(".sign-in-note")).to_have_text(
        "signed in on the admin page (API token)"
    )
    client = GraphQLClient(token_api, TOKEN)
    try:
        await query_and_subscribe(page, client, mailing_id)
    finally:
        await client.aclose()
    gate.assert_kept()


async def test_graphiql_with_an_oidc_sign_in(
    browser: Browser, oidc_api: str, provider: PkceProvider, pages: list[Watched]
) -> None:
    mailing_id = await scheduled_mailing()
    # The sign-in itself talks to the provider; GraphiQL afterwards to no one else.
    watched, gate = await offline_page(browser, oidc_api, pages, provider.issuer)
    page = watched.page
    provider.role = "viewer"
    await page.goto("/")
    await page.click("#oidc-sign-in")
    await expect(page.locator("#who")).to_have_text("ada · viewer")
    gate.allowed = {oidc_api}
    await page.goto("/graphql")
    await ready(page)
    await expect(page.locator(".sign-in-note")).to_have_text(
        "signed in on the admin page (access token)"
    )
    await run(page, LIST, "Listed")
    await expect(page.locator(".result-window")).to_contain_text('"text": "Spring sale"')
    # A viewer may watch, not change: the API's refusal shows as it is.
    cancel = f'mutation Cancel {{ cancelMailing(id: "{mailing_id}") {{ __typename }} }}'
    await run(page, cancel, "Cancel")
    await expect(page.locator(".result-window")).to_contain_text("mutations need the operator role")
    await run(page, watch_progress(mailing_id), "Watched")
    await expect(page.locator(".result-window")).to_contain_text('"status": "SCHEDULED"')
    gate.assert_kept()
