"""Helpers for the admin page's browser tests: Chromium, screenshots, a PKCE sign-in provider.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (never a
browser Playwright downloads). The tests skip, saying why, only when it is
absent; ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.conftest import DATA_DIR
from tests.support.oidc import AUDIENCE, LoopbackServer, public_jwk, rsa_key

# Assertions wait as long as actions do (``set_default_timeout`` below), not
# Playwright's 5 s: on a loaded machine, with the suite's xdist workers beside
# it, a page's first answer once took longer than that. The wait ends as soon
# as the condition holds; only a failure takes the whole time.
_WAIT_MS = 15_000
expect.set_options(timeout=_WAIT_MS)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots go to the run's data directory; with ADMIN_SCREENSHOTS set
# (`make screenshots`), also there, to refresh docs/screenshots/.
SCREENSHOT_DIRS = [DATA_DIR / "screenshots"] + (
    [Path(os.environ["ADMIN_SCREENSHOTS"])] if os.environ.get("ADMIN_SCREENSHOTS") else []
)
TIMEZONE = "Europe/Moscow"

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium "
    "(apt-get install chromium; .ci/run does)",
)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """A page, and what went wrong in it: uncaught errors and CSP violations."""

    page: Page
    context: BrowserContext
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.problems, self.problems


async def open_page(browser: Browser, base_url: str) -> Watched:
    """A fresh browser context (own sessionStorage) in the operator's time zone."""
    context = await browser.new_context(
        base_url=base_url,
        viewport={"width": 1280, "height": 860},
        timezone_id=TIMEZONE,
        locale="en-GB",
    )
    context.set_default_timeout(_WAIT_MS)
    page = await context.new_page()
    watched = Watched(page, context)
    page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            watched.problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return watched


# The admin page tests' fixtures, ``browser`` and ``admin``: a test module
# imports the functions (``chromium_browser``, ``admin_page``) to use them.
@pytest.fixture(name="browser", scope="module")
async def chromium_browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(name="admin")
async def admin_page(browser: Browser, served_api: str, db: str) -> AsyncIterator[Watched]:
    """The admin page, open on the served API; clean (no page errors, no CSP reports) at the end."""
    watched = await open_page(browser, served_api)
    yield watched
    await watched.context.close()
    watched.assert_clean()


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    for directory in SCREENSHOT_DIRS:
        directory.mkdir(parents=True, exist_ok=True)
    first = SCREENSHOT_DIRS[0] / f"{name}.png"
    await page.screenshot(path=str(first), full_page=full_page)
    for directory in SCREENSHOT_DIRS[1:]:
        shutil.copyfile(first, directory / f"{name}.png")


async def download_by_clicking(page: Page, selector: str) -> str:
    """The text of the file the page saves when ``selector`` is clicked."""
    async with page.expect_download() as download:
        await page.click(selector)
    saved = await (await download.value).path()
    return await asyncio.to_thread(saved.read_text, encoding="utf-8")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class PkceProvider(LoopbackServer):
    """An OAuth2 provider on loopback for the browser's authorization-code + PKCE flow.

    ``/authorize`` signs in at once as ``subject`` with ``role`` and redirects
    back with a code; ``/token`` hands out an RS256 access token only for the
    right code, client, redirect URI and ``code_verifier``. Its JWKS is what
    the API verifies the token with.

    Access tokens live ``lifetime`` seconds. With ``refresh`` on, each comes
    with a refresh token, good for one ``refresh_token`` grant (rotated, as
    providers advise for browsers), until ``refresh_refused``.
    """

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.key = rsa_key()
        self.role = "viewer"
        self.subject = "ada"
        self.lifetime = 600
        self.refresh = False
        self.refresh_refused = False
        self._refresh_tokens: dict[str, dict[str, str]] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._codes: dict[str, dict[str, str]] = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider.discovery())
                elif url.path == "/jwks":
                    self._json(200, {"keys": [public_jwk(provider.key, "admin-test")]})
                elif url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    self.send_response(302)
                    self.send_header("Location", provider.authorize(query))
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/token":
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = provider.exchange(form)
                self._json(status, body)

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # The browser calls discovery and /token from the admin page's origin.
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self._serve(Handler)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        self.authorize_requests.append(query)
        code = secrets.token_urlsafe(16)
        self._codes[code] = {**query, "role": self.role, "subject": self.subject}
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def reset(self) -> None:
        self.role, self.lifetime, self.refresh, self.refresh_refused = "viewer", 600, False, False

    def renewals(self) -> int:
        return sum(1 for form in self.token_requests if form.get("grant_type") == "refresh_token")

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        if form.get("grant_type") == "refresh_token":
            return self._renew(form)
        grant = self._codes.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != self.client_id
            or form.get("redirect_uri") != grant["redirect_uri"]
            or grant.get("code_challenge_method") != "S256"
        ):
            return 400, {"error": "invalid_grant"}
        challenge = _b64url(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        if challenge != grant["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        return 200, self._tokens(grant)

    def _renew(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
        if grant is None or self.refresh_refused or form.get("client_id") != self.client_id:
            return 400, {"error": "invalid_grant"}
        return 200, self._tokens(grant)

    def _tokens(self, grant: dict[str, str]) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": grant["subject"],
            "preferred_username": grant["subject"],
            "roles": [grant["role"]],
            "iat": now,
            "exp": now + self.lifetime,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "admin-test"})
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }
        if self.refresh:
            refresh_token = secrets.token_urlsafe(24)
            self._refresh_tokens[refresh_token] = grant
            body["refresh_token"] = refresh_token
        return body


__all__ = [
    "AUDIENCE",
    "TIMEZONE",
    "PkceProvider",
    "Watched",
    "chromium",
    "download_by_clicking",
    "open_page",
    "requires_chromium",
    "screenshot",
]
