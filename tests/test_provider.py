"""The send-API client against httpx.MockTransport: the request, and every outcome class."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
import structlog.testing

import tasks.provider as provider
from settings import Settings
from tasks.provider import (
    AiohttpProviderClient,
    HttpxProviderClient,
    PyreqwestProviderClient,
    make_provider_client,
)
from tasks.send_results import SendResult, classify_failure, classify_response, parse_retry_after

TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.s1gnature"
OK = b'{"code":0,"message":"OK"}'
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
Send = Callable[..., Awaitable[SendResult]]


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"provider_url": "http://provider.test/api/", "send_timeout": 5.0}
    return Settings(**{**values, **overrides})


@pytest.fixture
async def send() -> AsyncIterator[Callable[[Handler], Send]]:
    """``send(handler)(message_id=..., ...)``: one client over a MockTransport per handler."""
    clients: list[HttpxProviderClient] = []

    def make(handler: Handler, **overrides: Any) -> Send:
        client = HttpxProviderClient(_settings(**overrides), transport=httpx.MockTransport(handler))
        clients.append(client)

        async def call(
            message_id: int = 42, phone: str = "79001234567", text: str = "hi"
        ) -> SendResult:
            return await client.send(message_id, phone, text)

        return call

    yield make
    for client in clients:
        await client.aclose()


def _answer(status: int, body: bytes = OK, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return handler


def _raise(exc: Exception) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def test_request_shape_with_token(send: Callable[..., Send]) -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=OK)

    result = await send(handler, provider_token=TOKEN)(42, "79001234567", "Привет")
    assert result == SendResult("sent", None, 200, None, result.latency)
    assert result.latency >= 0
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "http://provider.test/api/send/42"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == {"id": 42, "phone": 79001234567, "text": "Привет"}


async def test_no_authorization_header_without_token(send: Callable[..., Send]) -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=OK)

    await send(handler)()
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("status", "body", "kind", "error"),
    [
        (200, OK, "sent", None),
        (200, b'{"code": 0}', "sent", None),
        (200, b"<html>busy</html>", "transient", "bad body: not JSON: <html>busy</html>"),
        (200, b"", "transient", "bad body: not JSON: (empty)"),
        (200, b'{"code": 0, "mess', "transient", 'bad body: not JSON: {"code": 0, "mess'),
        (200, b"[0]", "transient", "bad body: no code: [0]"),
        (200, b'{"status": "ok"}', "transient", 'bad body: no code: {"status": "ok"}'),
        (200, b'{"code": 1, "message": "queue full"}', "transient", "provider code 1: queue full"),
        (200, b'{"code": "0"}', "transient", "provider code '0'"),
        (200, b'{"code": false}', "transient", "provider code False"),
        (200, b'{"code": 0.0}', "transient", "provider code 0.0"),
        (201, OK, "transient", f"HTTP 201: {OK.decode()}"),
        (204, b"", "transient", "HTTP 204: "),
        (302, b"", "transient", "HTTP 302: "),
        (400, b"invalid phone", "rejected", "HTTP 400: invalid phone"),
        (401, b"bad token", "unauthorized", "HTTP 401: bad token"),
        (403, b"", "unauthorized", "HTTP 403: "),
        (404, b"no such route", "rejected", "HTTP 404: no such route"),
        (422, b'{"code": 22}', "rejected", 'HTTP 422: {"code": 22}'),
        (408, b"slow", "transient", "HTTP 408: slow"),
        (429, b"slow down", "rate_limited", "HTTP 429: slow down"),
        (500, b"boom\n  trace", "transient", "HTTP 500: boom trace"),
        (502, b"", "transient", "HTTP 502: "),
        (503, b"maintenance", "transient", "HTTP 503: maintenance"),
    ],
)
async def test_classification(
    send: Callable[..., Send], status: int, body: bytes, kind: str, error: str | None
) -> None:
    result = await send(_answer(status, body))()
    assert result.kind == kind
    assert result.error == error
    assert result.status_code == status


async def test_error_body_is_truncated_to_200_chars(send: Callable[..., Send]) -> None:
    result = await send(_answer(503, b"x" * 5000))()
    assert result.error == "HTTP 503: " + "x" * 200 + "…"


async def test_garbage_200_is_truncated(send: Callable[..., Send]) -> None:
    result = await send(_answer(200, b"\xff\xfe" + b"y" * 5000))()
    assert result.kind == "transient"
    assert result.error is not None
    assert len(result.error) < 260


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limited"), (503, "transient")])
async def test_retry_after_seconds(send: Callable[..., Send], status: int, kind: str) -> None:
    result = await send(_answer(status, b"", {"Retry-After": "7"}))()
    assert result.kind == kind
    assert result.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, b"boom\x00bad", "transient"),
        (200, b'{"code":1,"message":"a\\u0000b"}', "transient"),
        (200, b'{"code":1,"message":"\\ud800"}', "transient"),
        (400, b"\x00\x01\x02\xff" * 100, "rejected"),
        (503, b"z" * 2_000_000, "transient"),
    ],
)
async def test_hostile_answers_give_printable_bounded_reasons(
    send: Callable[..., Send], status: int, body: bytes, kind: str
) -> None:
    result = await send(_answer(status, body))()
    assert result.kind == kind
    assert result.error is not None
    assert result.error.isprintable()
    assert len(result.error) <= 260
    result.error.encode("utf-8")  # valid UTF-8: no lone surrogate


async def test_retry_after_http_date(send: Callable[..., Send]) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    result = await send(_answer(429, b"", {"Retry-After": format_datetime(when, usegmt=True)}))()
    assert result.retry_after is not None
    assert 25 <= result.retry_after <= 31


async def test_retry_after_ignored_on_other_statuses(send: Callable[..., Send]) -> None:
    result = await send(_answer(500, b"", {"Retry-After": "7"}))()
    assert result.retry_after is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wednesday, 21-Oct-26 07:28:30 GMT", 30.0),
        ("Wed Oct 21 07:28:30 2026", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


def _chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


_REFUSED = ConnectionRefusedError(111, "Connection refused")
_RESET_BY_PEER = ConnectionResetError(104, "Connection reset by peer")
_FAILURES: list[tuple[Exception, str]] = [
    (_chained(httpx.ConnectError("All attempts failed"), _REFUSED), "connection refused"),
    (httpx.ConnectTimeout("connect"), "timeout"),
    (httpx.ReadTimeout("read"), "timeout"),
    (httpx.PoolTimeout("pool"), "timeout"),
    (TimeoutError(), "timeout"),
    (_chained(httpx.ReadError(""), _RESET_BY_PEER), "connection reset"),
    (httpx.RemoteProtocolError("Server disconnected without a response."), "connection reset"),
    (httpx.RemoteProtocolError("illegal status line"), "protocol error: illegal status line"),
    (httpx.ConnectError("[Errno -2] Name unknown"), "ConnectError: [Errno -2] Name unknown"),
    # A wrapper may map every connection error to ConnectTimeout: the cause
    # tells what really happened.
    (_chained(httpx.ConnectTimeout("x"), aiohttp.ServerDisconnectedError()), "connection reset"),
    (aiohttp.ServerDisconnectedError(), "connection reset"),
    (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), "timeout"),
    (aiohttp.ConnectionTimeoutError("Connection timeout"), "timeout"),
    (_chained(aiohttp.ClientOSError(104, "reset"), _RESET_BY_PEER), "connection reset"),
    (aiohttp.ClientPayloadError("not completed"), "protocol error: not completed"),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "error"), _FAILURES)
async def test_failures_are_transient_and_readable(
    send: Callable[..., Send], exc: Exception, error: str
) -> None:
    result = await send(_raise(exc))()
    assert result == SendResult("transient", error, None, None, result.latency)
    assert classify_failure(exc, 0.5) == SendResult("transient", error, None, None, 0.5)


async def test_total_timeout_bounds_the_whole_attempt(send: Callable[..., Send]) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=OK)

    result = await send(slow, send_timeout=0.1)()
    assert result.kind == "transient"
    assert result.error == "timeout"
    assert 0.1 <= result.latency < 5  # cut short by the timeout, not by the answer


async def test_bugs_are_not_swallowed(send: Callable[..., Send]) -> None:
    with pytest.raises(ZeroDivisionError):
        await send(_raise(ZeroDivisionError()))()


@pytest.mark.parametrize("phone", ["", "+79001234567", "7900abc", "\uff17\uff19\uff10\uff10"])
async def test_invalid_phone_is_rejected_without_a_request(
    send: Callable[..., Send], phone: str
) -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=OK)

    result = await send(handler)(phone=phone)
    assert result.kind == "rejected"
    assert calls == 0


async def test_token_never_in_errors_or_logs(
    send: Callable[..., Send],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = structlog.testing.CapturingLogger()
    monkeypatch.setattr(provider, "log", captured)
    caplog.set_level(logging.DEBUG, logger=provider.__name__)

    async def echo(request: httpx.Request) -> httpx.Response:
        # A provider that echoes what it got, as careless ones do.
        auth = request.headers["authorization"]
        status = 401 if request.url.path.endswith("/1") else 200
        return httpx.Response(status, content=f"rejected {auth}".encode())

    call = send(echo, provider_token=TOKEN)
    results = [await call(message_id=1), await call(message_id=2)]
    assert [r.kind for r in results] == ["unauthorized", "transient"]
    assert results[0].error == "HTTP 401: rejected Bearer <token>"
    assert all(TOKEN not in str(r) for r in results)
    assert len(captured.calls) == 2
    for logged in captured.calls:
        assert logged.method_name == "debug"
        assert TOKEN not in repr(logged)
        assert logged.kwargs["message_id"] in (1, 2)
    assert "Bearer <token>" in captured.calls[0].kwargs["body"]
    settings = _settings(provider_token=TOKEN)
    assert TOKEN not in repr(settings)


async def test_no_debug_work_when_debug_is_off(
    send: Callable[..., Send], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    captured = structlog.testing.CapturingLogger()
    monkeypatch.setattr(provider, "log", captured)
    caplog.set_level(logging.INFO, logger=provider.__name__)
    await send(_answer(200))()
    assert captured.calls == []


def test_classify_response_redacts() -> None:
    result = classify_response(500, b"token=abc", None, 0.1, secret="abc")
    assert result.error == "HTTP 500: token=<token>"


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("pyreqwest", PyreqwestProviderClient),
        ("httpx", HttpxProviderClient),
        ("aiohttp", AiohttpProviderClient),
    ],
)
async def test_make_provider_client(name: str, cls: type) -> None:
    client = make_provider_client(_settings(provider_http=name))
    try:
        assert isinstance(client, cls)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8001/",
        "https://api.test/v1/",
        "https://api.test/a%20b",
    ],
)
def test_the_aiohttp_client_posts_under_the_base_url(base: str) -> None:
    client = AiohttpProviderClient(_settings(provider_url=base))
    assert str(client.send_url(42)) == f"{base.rstrip('/')}/send/42"
