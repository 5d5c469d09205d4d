"""Connections a client can hold against a real uvicorn: headers, WebSockets, subscriptions.

Issue 20, findings 2, 3 and 6: idle sockets that never authenticated were
kept 60 s and never capped, authenticated ones forever; a request header of
any size was read whole; subscriptions were unlimited. Through a real server,
since each limit lives in uvicorn or on a real socket.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from models import MailingStatus
from tests.conftest import serve_api, stop_process
from tests.support.api import Subscription
from tests.support.factories import make_mailing

PROGRESS = "subscription($id: ID!) { mailingProgress(id: $id) { status } }"
# Tight limits, so that the test opens few sockets; each is a setting.
LIMITS = {
    "WS_AUTH_TIMEOUT": "1",
    "WS_IDLE_TIMEOUT": "2",
    "MAX_WEBSOCKETS_PER_ADDRESS": "3",
    "MAX_SUBSCRIPTIONS_PER_CONNECTION": "2",
    "MAX_SUBSCRIPTIONS_PER_CALLER": "3",
    "MAX_HEADER_BYTES": "8192",
}


@pytest.fixture(scope="module")
def limited_api(database: str) -> Iterator[str]:
    url, proc = serve_api(LIMITS, log_name="limited")
    yield url
    stop_process(proc)


async def _closed(ws: Any) -> tuple[int, str]:
    """The close code and reason the server sent, waiting for it (bounded)."""
    async with asyncio.timeout(30):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                received = closed.rcvd
                break
    assert received is not None
    return received.code, received.reason


async def test_a_socket_that_does_not_authenticate_is_closed(limited_api: str) -> None:
    async with connect(
        limited_api.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    ) as ws:
        assert await _closed(ws) == (4408, "Connection initialisation timeout")


async def test_an_idle_socket_is_closed(limited_api: str) -> None:
    subscription = await Subscription.connect(limited_api)
    try:
        assert (await subscription.receive())["type"] == "connection_ack"
        assert await _closed(subscription.ws) == (1000, "Idle: no operation for 2 s")
    finally:
        await subscription.close()


async def test_websockets_per_address_are_capped(limited_api: str) -> None:
    opened = [await Subscription.connect(limited_api) for _ in range(3)]
    try:
        for subscription in opened:
            assert (await subscription.receive())["type"] == "connection_ack"
        with pytest.raises(InvalidStatus) as refused:
            await Subscription.connect(limited_api)
        assert refused.value.response.status_code == 403
    finally:
        for subscription in opened:
            await subscription.close()
    # Places are given back as sockets close (the server notices within moments).
    for _ in range(100):
        try:
            again = await Subscription.connect(limited_api)
        except InvalidStatus:
            await asyncio.sleep(0.1)
            continue
        await again.close()
        break
    else:
        raise AssertionError("the cap kept closed sockets")


async def test_subscriptions_per_socket_and_per_caller_are_capped(limited_api: str) -> None:
    mailing = await make_mailing(status=MailingStatus.RUNNING)
    first = await Subscription.connect(limited_api)
    second = await Subscription.connect(limited_api)
    try:
        for subscription in (first, second):
            assert (await subscription.receive())["type"] == "connection_ack"
        for id_ in ("1", "2", "3"):
            await first.subscribe(PROGRESS, {"id": str(mailing.id)}, id_)
        answers = [await first.receive() for _ in range(3)]
        refused = [a for a in answers if a["type"] == "next" and "errors" in a["payload"]]
        assert [a["payload"]["errors"][0]["extensions"] for a in refused] == [
            {"code": "TOO_MANY_SUBSCRIPTIONS", "limit": 2}
        ]
        # The open API is one caller per address: 2 on the first socket, 1 more here, then none.
        await second.subscribe(PROGRESS, {"id": str(mailing.id)}, "1")
        assert (await second.receive())["type"] == "next"
        await second.subscribe(PROGRESS, {"id": str(mailing.id)}, "2")
        answer = await second.receive()
        while answer.get("id") != "2":
            answer = await second.receive()
        assert answer["payload"]["errors"][0]["extensions"] == {
            "code": "TOO_MANY_SUBSCRIPTIONS",
            "limit": 3,
        }
    finally:
        await first.close()
        await second.close()


def _raw_request(url: str, request: bytes) -> bytes:
    """What the server answers; b"" if it cut the connection before reading it all."""
    host, port = url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            for start in range(0, len(request), 16384):
                sock.sendall(request[start : start + 16384])
            while chunk := sock.recv(65536):
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
    return answer


def test_oversized_headers_are_refused(limited_api: str) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: close\r\n"
    # Refused by the parser as it reads, not once a megabyte has arrived.
    big = b"X-Padding: " + b"a" * 1_000_000 + b"\r\n"
    answer = _raw_request(limited_api, head + big + b"\r\n")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
    answer = _raw_request(limited_api, head + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "errors": [
            {
                "message": "This request has more than the 100 headers allowed",
                "extensions": {"code": "REQUEST_TOO_LARGE"},
            }
        ]
    }
    fine = _raw_request(limited_api, head + b"\r\n")
    assert fine.startswith(b"HTTP/1.1 200 ")
    assert json.loads(fine.split(b"\r\n\r\n", 1)[1])["status"] == "ok"
