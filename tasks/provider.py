"""The client of the external send API (SPEC section 5).

``send`` posts one message to ``{PROVIDER_URL}/send/{msgId}`` and says what
came of it as a :class:`SendResult`: ``sent`` (HTTP 200 with ``code`` 0 and
nothing else), ``rejected`` (a 4xx about this message: permanent),
``rate_limited`` (429: slow down), ``unauthorized`` (401 or 403: our
credentials are refused, which is about every message, not this one), or
``transient`` (everything else: 408, 5xx, timeouts, refused or reset
connections, protocol errors, a 200 with garbage). It never raises for
network or protocol trouble, so the engine has one thing to handle. Reasons
are short, printable and bounded, whatever bytes the provider sent.

Two HTTP stacks carry the same requests, chosen by ``PROVIDER_HTTP`` (see
``bench/bench_http_clients.py`` for what each costs): ``aiohttp``, the
default, and ``httpx``. Both share :func:`classify_response` and
:func:`classify_failure`, so they agree on every outcome. A client belongs
to the event loop it first sends on: one per process (per loop), reused for
every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import aiohttp
import httpcore
import httpx
import orjson
import structlog
import yarl

from settings import Settings

__all__ = [
    "AiohttpProviderClient",
    "HttpxProviderClient",
    "ProviderClient",
    "SendResult",
    "classify_failure",
    "classify_response",
    "make_provider_client",
    "parse_retry_after",
]

log = structlog.get_logger(__name__)
# The standard library's level decides, as under logs.configure_logging, even
# where structlog is left unconfigured (benches, tests) and would print every
# attempt; and at thousands of requests a second the fields aren't built.
_stdlib_log = logging.getLogger(__name__)

_BODY_LIMIT = 200
_USER_AGENT = "mailings-sender/0.1"
# What a stack raises for network and protocol trouble; anything else is a bug
# and propagates.
_NETWORK_ERRORS = (
    httpx.HTTPError,
    httpx.InvalidURL,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)


SendKind = Literal["sent", "rejected", "rate_limited", "unauthorized", "transient"]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt to send a message came to."""

    kind: SendKind
    # None when sent; otherwise a short reason an operator can read.
    error: str | None
    status_code: int | None
    # Seconds, from a Retry-After header on a 429 or 503.
    retry_after: float | None
    latency: float


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
    if settings.provider_http == "aiohttp":
        return AiohttpProviderClient(settings)
    return HttpxProviderClient(settings)


# -- classification, shared by every stack ------------------------------------


def classify_response(
    status: int,
    body: bytes,
    retry_after: str | None,
    latency: float,
    *,
    secret: str | None = None,
) -> SendResult:
    """Classify an HTTP answer; ``retry_after`` is the raw header, ``secret`` is redacted."""
    if status == 200:
        reason = _bad_success_reason(body)
        if reason is None:
            return SendResult("sent", None, 200, None, latency)
        return SendResult("transient", _redact(reason, secret), 200, None, latency)
    error = _redact(f"HTTP {status}: {_snippet(body)}", secret)
    if status == 429:
        return SendResult("rate_limited", error, status, parse_retry_after(retry_after), latency)
    if status in (401, 403):
        return SendResult("unauthorized", error, status, None, latency)
    if 400 <= status < 500 and status != 408:
        return SendResult("rejected", error, status, None, latency)
    wait = parse_retry_after(retry_after) if status == 503 else None
    return SendResult("transient", error, status, wait, latency)


def classify_failure(
    exc: BaseException, latency: float, *, secret: str | None = None
) -> SendResult:
    """Classify a request that got no HTTP answer: always transient."""
    return SendResult("transient", _redact(_failure_reason(exc), secret), None, None, latency)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP-date; None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _bad_success_reason(body: bytes) -> str | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"bad body: not JSON: {_snippet(body) or '(empty)'}"
    if not isinstance(payload, dict) or "code" not in payload:
        return f"bad body: no code: {_snippet(body)}"
    code = payload["code"]
    if type(code) is int and code == 0:
        return None
    message = payload.get("message")
    detail = f": {_snippet(str(message))}" if message is not None else ""
    return f"provider code {_snippet(repr(code), 40)}{detail}"


def _failure_reason(exc: BaseException) -> str:
    # The innermost error is the most precise: a library that wraps another's
    # errors may map them all to one type (a ConnectTimeout for any failure).
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in reversed(chain):
        reason = _specific_reason(error)
        if reason is not None:
            return reason
    return f"{type(exc).__name__}: {_snippet(str(exc), 120)}"


def _specific_reason(exc: BaseException) -> str | None:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(
        exc,
        ConnectionResetError
        | BrokenPipeError
        | ConnectionAbortedError
        # The server closed the connection without a response.
        | aiohttp.ServerDisconnectedError,
    ):
        return "connection reset"
    if isinstance(exc, TimeoutError | httpx.TimeoutException | httpcore.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError | httpcore.RemoteProtocolError):
        if "disconnected" in str(exc):
            return "connection reset"
        return f"protocol error: {_snippet(str(exc), 120)}"
    if isinstance(
        exc,
        aiohttp.ClientPayloadError | aiohttp.ClientResponseError | httpx.DecodingError,
    ):
        return f"protocol error: {_snippet(str(exc), 120)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connect error: {_snippet(str(exc.os_error), 120)}"
    return None


def _snippet(data: bytes | str, limit: int = _BODY_LIMIT) -> str:
    """At most ``limit`` printable characters of ``data``: NUL and other controls become U+FFFD."""
    if isinstance(data, bytes):
        data = data[: limit * 4].decode("utf-8", "replace")
    text = " ".join(data[: limit * 4].split())
    if len(text) > limit:
        text = text[:limit] + "…"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
    # A lone surrogate (from a JSON "\ud800") is not UTF-8 either.
    return text.encode("utf-8", "replace").decode("utf-8")


def _redact(text: str, secret: str | None) -> str:
    if secret and secret in text:
        return text.replace(secret, "<token>")
    return text


# -- the stacks ---------------------------------------------------------------


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


def _encode(message_id: int, phone: str, text: str) -> bytes:
    return orjson.dumps({"id": message_id, "phone": int(phone), "text": text})


class _BaseClient:
    def __init__(self, settings: Settings) -> None:
        self._base_url = settings.provider_url.rstrip("/")
        self._secret = (
            settings.provider_token.get_secret_value() if settings.provider_token else None
        )

    def _invalid_phone(self, phone: str) -> SendResult | None:
        if phone.isascii() and phone.isdigit():
            return None
        # No provider can ever deliver it: a permanent rejection, never sent.
        return SendResult("rejected", f"invalid phone {phone[:20]!r}", None, None, 0.0)

    def _log_attempt(self, message_id: int, result: SendResult, body: bytes | None) -> None:
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            log.debug(
                "provider attempt",
                message_id=message_id,
                kind=result.kind,
                status=result.status_code,
                latency_ms=round(result.latency * 1000, 1),
                error=result.error,
                body=_redact(_snippet(body), self._secret) if body is not None else None,
            )


class HttpxProviderClient(_BaseClient):
    """The send API over ``httpx.AsyncClient``: its own pool, or the given transport."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings)
        self._total_timeout = settings.send_timeout
        self._client = httpx.AsyncClient(
            headers=_headers(settings),
            timeout=httpx.Timeout(settings.send_timeout, connect=settings.send_connect_timeout),
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
            async with asyncio.timeout(self._total_timeout):
                response = await self._client.post(url, content=content)
        except _NETWORK_ERRORS as exc:
            result = classify_failure(exc, time.perf_counter() - started, secret=self._secret)
        else:
            body = response.content
            result = classify_response(
                response.status_code,
                body,
                response.headers.get("retry-after"),
                time.perf_counter() - started,
                secret=self._secret,
            )
        self._log_attempt(message_id, result, body)
        return result

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpProviderClient(_BaseClient):
    """The send API over ``aiohttp.ClientSession``, created on the first send's loop.

    A request's time limit (``send_timeout``, for the whole attempt) is kept
    by one watchdog for all requests, not by a timer per request: aiohttp's
    per-request timeout (or ``asyncio.timeout``) cost about a tenth of a
    request's CPU. All requests share one limit, so they expire in the order
    they started; the watchdog cancels each late one, which then answers
    ``transient: timeout``, a little after its limit (a tenth of it at most).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        # A string URL is parsed again by every request (13 us); the base, once.
        self._url = yarl.URL(self._base_url)
        self._path_prefix = self._url.raw_path.rstrip("/")
        self._timeout = settings.send_timeout
        self._tick = min(0.1, settings.send_timeout / 10)
        # Requests out, oldest first: token -> (deadline, task).
        self._out: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._expired: set[int] = set()
        self._tokens = itertools.count()
        self._watchdog: asyncio.Task[None] | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            settings = self._settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=settings.send_concurrency, limit_per_host=0, ttl_dns_cache=300
                ),
                headers=_headers(settings),
                # The whole attempt's limit is the watchdog's; connecting keeps its own.
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
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("send() runs in a task")
        cancelling = task.cancelling()
        token = next(self._tokens)
        started = time.perf_counter()
        self._out[token] = (started + self._timeout, task)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="send timeouts")
        body: bytes | None = None
        try:
            async with session.post(url, data=content, allow_redirects=False) as response:
                body = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except _NETWORK_ERRORS as exc:
            body = None
            result = classify_failure(exc, time.perf_counter() - started, secret=self._secret)
        except asyncio.CancelledError:
            # Ours only if the watchdog cancelled it and nobody else did too.
            if token not in self._expired or task.uncancel() > cancelling:
                raise
            body = None
            result = classify_failure(TimeoutError(), time.perf_counter() - started)
        else:
            result = classify_response(
                status, body, retry_after, time.perf_counter() - started, secret=self._secret
            )
        finally:
            self._out.pop(token, None)
            self._expired.discard(token)
        self._log_attempt(message_id, result, body)
        return result

    def send_url(self, message_id: int) -> yarl.URL:
        """``{PROVIDER_URL}/send/{message_id}``, built from the parsed base."""
        return self._url.with_path(f"{self._path_prefix}/send/{message_id}", encoded=True)

    async def _watch(self) -> None:
        while self._out:
            await asyncio.sleep(self._tick)
            now = time.perf_counter()
            while self._out:
                token = next(iter(self._out))
                deadline, task = self._out[token]
                if deadline > now:
                    break
                del self._out[token]
                self._expired.add(token)
                task.cancel()

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._session is not None:
            await self._session.close()
