"""What one attempt to send a message came to, whatever HTTP stack carried it.

A :class:`SendResult` is ``sent`` (HTTP 200 with ``code`` 0 and nothing
else), ``rejected`` (a 4xx about this message: permanent), ``rate_limited``
(429: slow down), ``unauthorized`` (401 or 403: our credentials are refused,
which is about every message, not this one), or ``transient`` (everything
else: 408, 5xx, timeouts, refused or reset connections, protocol errors, a
200 with garbage). :func:`classify_response` reads an HTTP answer and
:func:`classify_failure` a request that got none; every stack in
:mod:`tasks.provider` uses both, so they agree on every outcome. Reasons are
short, printable and bounded, whatever bytes the provider sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
import httpcore
import httpx
import orjson
import pyreqwest.exceptions

from models import clock
from tasks.retry import MAX_RETRY_AFTER

__all__ = [
    "SendResult",
    "body_excerpt",
    "classify_failure",
    "classify_response",
    "parse_retry_after",
]

_BODY_LIMIT = 200


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
        seconds = (when - (now or clock.now())).total_seconds()
    if not math.isfinite(seconds):
        return None
    # Bounded for every reader (the message's next attempt, the pacer): a
    # provider asking for more is more likely wrong than right.
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


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
    if isinstance(exc, pyreqwest.exceptions.RequestError):
        return _pyreqwest_reason(exc)
    return None


def _pyreqwest_reason(exc: pyreqwest.exceptions.RequestError) -> str:
    # pyreqwest names the innermost cause (hyper's, then the OS's) in its details.
    if isinstance(exc, pyreqwest.exceptions.RequestTimeoutError):
        return "timeout"
    details = exc.details if isinstance(exc.details, dict) else {}
    causes = [str(cause.get("message", "")) for cause in details.get("causes") or []]
    innermost = causes[-1] if causes else str(exc)
    if "Connection refused" in innermost:
        return "connection refused"
    if any(
        sign in innermost
        for sign in ("Connection reset", "Broken pipe", "connection closed before message")
    ):
        return "connection reset"
    if isinstance(exc, pyreqwest.exceptions.ConnectError) and "tcp connect" in " ".join(causes):
        return f"connect error: {_snippet(innermost, 120)}"
    return f"protocol error: {_snippet(innermost, 120)}"


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


def body_excerpt(body: bytes, secret: str | None) -> str:
    """What a log line may show of an answer's body: short, printable, ``secret`` redacted."""
    return _redact(_snippet(body), secret)
