"""The client of the external send API (docs/sending.md, "The send API").

``send`` posts one message to ``{PROVIDER_URL}/send/{msgId}`` and says what
came of it as a :class:`~tasks.send_results.SendResult` (sent, rejected,
rate limited, unauthorized or transient: see :mod:`tasks.send_results`). It
never raises for network or protocol trouble, so the engine has one thing to
handle.

Three HTTP stacks carry the same requests, chosen by ``PROVIDER_HTTP`` (see
``bench/bench_http_clients.py`` for what each costs): ``pyreqwest`` (Rust's
reqwest, its I/O on a thread of its own: the cheapest for the worker's
core), the default; ``aiohttp``; and ``httpx``. All classify what they got with
:func:`~tasks.send_results.classify_response` and
:func:`~tasks.send_results.classify_failure`, so they agree on every outcome.
A client belongs to the event loop it first sends on: one per process (per
loop), reused for every request.

Every stack's time limit for a whole attempt (``SEND_TIMEOUT``) is kept by
:class:`~tasks.send_deadlines.SendDeadlines`, in time the loop ran, so that a
worker resumed after a freeze reads the answers that arrived meanwhile. The
stacks' own timers are only a backstop (:func:`_backstop`).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Protocol

import aiohttp
import httpx
import orjson
import pyreqwest.exceptions
import structlog
import yarl
from pyreqwest.client import Client as PyreqwestClient
from pyreqwest.client import ClientBuilder

from settings import Settings
from tasks.send_deadlines import SendDeadlines
from tasks.send_results import SendResult, body_excerpt, classify_failure, classify_response

__all__ = [
    "AiohttpProviderClient",
    "HttpxProviderClient",
    "ProviderClient",
    "PyreqwestProviderClient",
    "make_provider_client",
]

log = structlog.get_logger(__name__)
# The standard library's level decides, as under logs.configure_logging, even
# where structlog is left unconfigured (benches, tests) and would print every
# attempt; and at thousands of requests a second the fields aren't built.
_stdlib_log = logging.getLogger(__name__)

_USER_AGENT = "mailings-sender/0.1"
# What a stack raises for network and protocol trouble; anything else is a bug
# and propagates.
_NETWORK_ERRORS = (
    httpx.HTTPError,
    httpx.InvalidURL,
    aiohttp.ClientError,
    pyreqwest.exceptions.RequestError,
    OSError,
    TimeoutError,
)


class ProviderClient(Protocol):
    """What the engine needs of the send API."""

    async def send(self, message_id: int, phone: str, text: str) -> SendResult:
        """Post one message; never raises for network or protocol trouble."""
        ...

    async def aclose(self) -> None:
        """Close the connection pool."""
        ...


def make_provider_client(settings: Settings) -> ProviderClient:
    """The client ``settings.provider_http`` names, configured from ``settings``."""
    if settings.provider_http == "pyreqwest":
        return PyreqwestProviderClient(settings)
    if settings.provider_http == "aiohttp":
        return AiohttpProviderClient(settings)
    return HttpxProviderClient(settings)


def _headers(settings: Settings) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
    if settings.provider_token is not None:
        headers["Authorization"] = f"Bearer {settings.provider_token.get_secret_value()}"
    return headers


def _httpx_limits(settings: Settings) -> httpx.Limits:
    return httpx.Limits(
        max_connections=settings.send_concurrency,
        max_keepalive_connections=settings.send_concurrency,
    )


def _backstop(settings: Settings) -> float:
    """Seconds a stack's own timer lets a request wait, across freezes: past
    SEND_TIMEOUT plus the lease, the worker is treated as gone and another may
    have sent the message, so waiting longer for this answer buys nothing."""
    return settings.send_timeout + settings.send_lease


def _encode(message_id: int, phone: str, text: str) -> bytes:
    return orjson.dumps({"id": message_id, "phone": int(phone), "text": text})


class _BaseClient:
    def __init__(self, settings: Settings) -> None:
        self._base_url = settings.provider_url.rstrip("/")
        self._secret = (
            settings.provider_token.get_secret_value() if settings.provider_token else None
        )
        self._deadlines = SendDeadlines(settings.send_timeout)

    def _invalid_phone(self, phone: str) -> SendResult | None:
        if phone.isascii() and phone.isdigit():
            return None
        # No provider can ever deliver it: a permanent rejection, never sent.
        return SendResult("rejected", f"invalid phone {phone[:20]!r}", None, None, 0.0)

    def _answered(
        self, status: int, body: bytes, retry_after: str | None, started: float
    ) -> SendResult:
        return classify_response(
            status, body, retry_after, time.perf_counter() - started, secret=self._secret
        )

    def _failed(self, exc: BaseException, started: float) -> SendResult:
        return classify_failure(exc, time.perf_counter() - started, secret=self._secret)

    def _log_attempt(self, message_id: int, result: SendResult, body: bytes | None) -> None:
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            log.debug(
                "provider attempt",
                message_id=message_id,
                kind=result.kind,
                status=result.status_code,
                latency_ms=round(result.latency * 1000, 1),
                error=result.error,
                body=None if body is None else body_excerpt(body, self._secret),
            )


class HttpxProviderClient(_BaseClient):
    """The send API over ``httpx.AsyncClient``: its own pool, or the given transport."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings)
        self._client = httpx.AsyncClient(
            headers=_headers(settings),
            timeout=httpx.Timeout(_backstop(settings), connect=settings.send_connect_timeout),
            limits=_httpx_limits(settings),
            transport=transport,
            # Settings are the only reader of the environment: no proxies from it.
            trust_env=False,
        )

    async def send(self, message_id: int, phone: str, text: str) -> SendResult:
        invalid = self._invalid_phone(phone)
        if invalid is not None:
            return invalid
        content = _encode(message_id, phone, text)
        url = f"{self._base_url}/send/{message_id}"
        started = time.perf_counter()
        body: bytes | None = None
        try:
            # httpx's timeouts are per read or write; this bounds the whole attempt.
            async with self._deadlines.limit():
                response = await self._client.post(url, content=content)
        except _NETWORK_ERRORS as exc:
            result = self._failed(exc, started)
        else:
            body = response.content
            result = self._answered(
                response.status_code, body, response.headers.get("retry-after"), started
            )
        self._log_attempt(message_id, result, body)
        return result

    async def aclose(self) -> None:
        await self._deadlines.aclose()
        await self._client.aclose()


class AiohttpProviderClient(_BaseClient):
    """The send API over ``aiohttp.ClientSession``, created on the first send's loop.

    The whole attempt's time limit is :class:`~tasks.send_deadlines.SendDeadlines`'
    (one watchdog, not a timer per request: aiohttp's per-request timeout cost
    about a tenth of a request's CPU); connecting keeps aiohttp's own.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        # A string URL is parsed again by every request (13 us); the base, once.
        self._url = yarl.URL(self._base_url)
        self._path_prefix = self._url.raw_path.rstrip("/")

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            settings = self._settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=settings.send_concurrency, limit_per_host=0, ttl_dns_cache=300
                ),
                headers=_headers(settings),
                # The whole attempt's limit is the deadlines'; connecting keeps its own.
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=settings.send_connect_timeout
                ),
                # The send API sets no cookies we should send back.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def send(self, message_id: int, phone: str, text: str) -> SendResult:
        invalid = self._invalid_phone(phone)
        if invalid is not None:
            return invalid
        content = _encode(message_id, phone, text)
        url = self.send_url(message_id)
        session = self._get_session()
        started = time.perf_counter()
        body: bytes | None = None
        try:
            async with (
                self._deadlines.limit(),
                session.post(url, data=content, allow_redirects=False) as response,
            ):
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except _NETWORK_ERRORS as exc:
            body = None
            result = self._failed(exc, started)
        else:
            result = self._answered(status, body, retry_after, started)
        self._log_attempt(message_id, result, body)
        return result

    def send_url(self, message_id: int) -> yarl.URL:
        """``{PROVIDER_URL}/send/{message_id}``, built from the parsed base."""
        return self._url.with_path(f"{self._path_prefix}/send/{message_id}", encoded=True)

    async def aclose(self) -> None:
        await self._deadlines.aclose()
        if self._session is not None:
            await self._session.close()


class PyreqwestProviderClient(_BaseClient):
    """The send API over pyreqwest (Rust's reqwest on a tokio thread), created on first send.

    Connecting's timeout and the pool's keep-alive are reqwest's, kept on its
    own thread: no parser or socket on this process's event loop, which only
    awaits each answer. The whole attempt's limit is the deadlines', on the
    loop; reqwest's own is the backstop. A request whose limit passed is not
    aborted in reqwest (a cancelled await leaves it running until its
    backstop), so reqwest is given no cap on requests in flight: one left
    behind must not hold a live request's place. The engine caps them
    (``SEND_CONCURRENCY``).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._settings = settings
        self._client: PyreqwestClient | None = None
        self._headers = _headers(settings)

    def _get_client(self) -> PyreqwestClient:
        if self._client is None:
            settings = self._settings
            self._client = (
                ClientBuilder()
                .timeout(timedelta(seconds=_backstop(settings)))
                .connect_timeout(timedelta(seconds=settings.send_connect_timeout))
                .default_headers(self._headers)
                # The send API answers; it never redirects us anywhere else.
                .follow_redirects(False)
                # Settings are the only reader of the environment: no proxies from it.
                .no_proxy()
                .http1_only()
                .build()
            )
        return self._client

    async def send(self, message_id: int, phone: str, text: str) -> SendResult:
        invalid = self._invalid_phone(phone)
        if invalid is not None:
            return invalid
        content = _encode(message_id, phone, text)
        request = self._get_client().post(f"{self._base_url}/send/{message_id}").body_bytes(content)
        started = time.perf_counter()
        body: bytes | None = None
        try:
            async with self._deadlines.limit():
                response = await request.build().send()
                body = bytes(await response.bytes())
        except _NETWORK_ERRORS as exc:
            result = self._failed(exc, started)
        else:
            result = self._answered(
                response.status, body, response.headers.get("retry-after"), started
            )
        self._log_attempt(message_id, result, body)
        return result

    async def aclose(self) -> None:
        await self._deadlines.aclose()
        if self._client is not None:
            await self._client.close()
