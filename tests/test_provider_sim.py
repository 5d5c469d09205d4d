"""The send-API simulator itself: validation, faults, introspection, the command."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cli import _parser as cli_parser
from provider_sim import Faults, SimulatorServer, run_simulator, running_simulator
from provider_sim.ledger import Ledger
from provider_sim.send import SendApi
from tests.conftest import bound_socket, port_of

PHONE = 79001234567
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        yield client


def _message(message_id: int, **overrides: Any) -> dict[str, Any]:
    return {"id": message_id, "phone": PHONE, "text": "hello", **overrides}


async def _post(http: httpx.AsyncClient, url: str, message_id: int, **body: Any) -> httpx.Response:
    return await http.post(f"{url}/send/{message_id}", json=_message(message_id, **body))


async def _eventually(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Return once ``check()`` is true; fail after 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 10 s")


async def _until_up(sim: SimulatorServer) -> None:
    await _eventually(lambda: not sim.is_down)


# What a client sees of an outage: the port stays bound, and resets every connection.
_RESET = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


async def test_accepts_and_answers_ok(http: httpx.AsyncClient) -> None:
    async with running_simulator() as sim:
        response = await _post(http, sim.url, 5)
        assert response.status_code == 200
        assert response.json() == {"code": 0, "message": "OK"}
        assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        ("/send/5", b"not json", "body is not JSON"),
        ("/send/5", b"[5]", "body is not a JSON object"),
        ("/send/5", orjson.dumps(_message(6)), "id must be an integer equal to the msgId"),
        ("/send/5", orjson.dumps(_message(5, id="5")), "id must be an integer equal to the msgId"),
        ("/send/5", orjson.dumps(_message(5, phone="79001234567")), "phone must be an integer"),
        ("/send/5", orjson.dumps({"id": 5, "phone": PHONE}), "text must be a string"),
        ("/send/5", orjson.dumps(_message(5, text=None)), "text must be a string"),
    ],
)
async def test_invalid_bodies_are_400(
    http: httpx.AsyncClient, path: str, content: bytes, reason: str
) -> None:
    async with running_simulator() as sim:
        response = await http.post(sim.url + path, content=content)
        assert response.status_code == 400
        assert response.json()["message"].startswith(reason)
        assert sim.stats()["by_outcome"] == {"invalid": 1}


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/send/abc"), ("POST", "/nope"), ("GET", "/send/1")]
)
async def test_unknown_routes_are_404(http: httpx.AsyncClient, method: str, path: str) -> None:
    async with running_simulator() as sim:
        response = await http.request(method, sim.url + path, json=_message(1))
        assert response.status_code == 404
        assert sim.stats()["accepted"] == 0


async def test_introspection_over_http(http: httpx.AsyncClient) -> None:
    async with running_simulator(fail_rate=0.0) as sim:
        before = datetime.now().astimezone()
        for message_id in (1, 2, 1):
            await _post(http, sim.url, message_id)
        await http.post(f"{sim.url}/send/3", content=b"{}")
        stats = (await http.get(f"{sim.url}/_sim/stats")).json()
        assert stats["requests"] == 4
        assert stats["accepted"] == 3
        assert stats["unique_accepted"] == 2
        assert stats["duplicates"] == 1
        assert stats["by_outcome"] == {"accepted": 3, "invalid": 1}
        assert stats["down"] is False
        assert datetime.fromisoformat(stats["first_request_at"]) >= before
        accepted = (await http.get(f"{sim.url}/_sim/accepted")).json()
        assert [[row[0], row[1], row[3]] for row in accepted] == [[1, 2, PHONE], [2, 1, PHONE]]
        assert datetime.fromisoformat(accepted[0][2]) >= before
        requests = (await http.get(f"{sim.url}/_sim/requests")).json()
        assert [[row[0], row[2], row[3]] for row in requests] == [
            [1, "accepted", True],
            [2, "accepted", True],
            [1, "accepted", True],
            [3, "invalid", False],
        ]
        arrivals = [datetime.fromisoformat(row[1]) for row in requests]
        assert arrivals == sorted(arrivals)
        assert arrivals[-1] == datetime.fromisoformat(stats["last_request_at"])
        reset = await http.post(f"{sim.url}/_sim/reset")
        assert reset.status_code == 200
        stats = (await http.get(f"{sim.url}/_sim/stats")).json()
        assert stats["requests"] == 0
        assert (await http.get(f"{sim.url}/_sim/accepted")).json() == []


async def test_faults_change_at_run_time(http: httpx.AsyncClient) -> None:
    async with running_simulator() as sim:
        assert (await _post(http, sim.url, 1)).status_code == 200
        changed = await http.post(
            f"{sim.url}/_sim/faults", json={"fail-rate": 1, "latency_jitter": 5}
        )
        assert changed.status_code == 200
        assert changed.json()["fail_rate"] == 1.0
        assert changed.json()["latency_jitter"] == 5.0
        assert (await _post(http, sim.url, 2)).status_code == 500
        assert (await http.get(f"{sim.url}/_sim/faults")).json()["fail_rate"] == 1.0
        assert sim.faults.fail_rate == 1.0


@pytest.mark.parametrize(
    "changes",
    [
        {"fail_rate": 1.5},
        {"fail_rate": -0.1},
        {"fail_rate": "half"},
        {"latency": True},
        {"down": 1},
        {"token": 5},
        {"seed": "x"},
        {"no_such_fault": 1},
        {"outage_every": 1, "outage_for": 2},
        {"down_for": 0},
        {"nul_rate": 1.01},
        {"accept_hang_rate": -1},
        {"accept_late_rate": "1"},
        {"late_by": -5},
        {"retry_after_first": 1.5},
        {"retry_after_first": -1},
        {"retry_after": -1},
        {"max_rps": True},
        {"max_rps": "10"},
        {"unauthorized_for": 0},
        {"forbidden_for": -1},
        {"forbidden_for": True},
        {"latency": 1e12},
        {"fail_rate": 0.6, "nul_rate": 0.5},
        {"unauthorized_for": 5, "fail_rate": 2},
        [1, 2],
    ],
)
async def test_bad_fault_changes_are_400(http: httpx.AsyncClient, changes: Any) -> None:
    async with running_simulator() as sim:
        response = await http.post(f"{sim.url}/_sim/faults", json=changes)
        assert response.status_code == 400
        assert response.json()["message"]
        assert sim.faults == Faults()
        assert not sim.stats()["unauthorized"]
        assert not sim.stats()["forbidden"]


def test_faults_validate() -> None:
    with pytest.raises(ValueError, match="probability"):
        Faults().replace({"reject_rate": 2})
    assert Faults().replace({"reject-rate": 0.5}).reject_rate == 0.5


async def test_rejections_are_deterministic_per_id_and_seed(http: httpx.AsyncClient) -> None:
    async def rejected_ids(seed: int) -> set[int]:
        async with running_simulator(reject_rate=0.3, seed=seed) as sim:
            statuses = [(i, (await _post(http, sim.url, i)).status_code) for i in range(1, 201)]
            return {i for i, status in statuses if status == 400}

    first = await rejected_ids(1)
    assert 30 <= len(first) <= 90
    assert await rejected_ids(1) == first
    assert await rejected_ids(2) != first


async def test_transient_faults_are_random_per_request(http: httpx.AsyncClient) -> None:
    async with running_simulator(fail_rate=0.25, rate_limit_rate=0.25, seed=3) as sim:
        statuses = [(await _post(http, sim.url, 1)).status_code for _ in range(400)]
        assert 60 <= statuses.count(500) <= 140
        assert 60 <= statuses.count(429) <= 140
        assert 120 <= statuses.count(200) <= 280
        outcomes = sim.stats()["by_outcome"]
        assert outcomes["failed"] == statuses.count(500)
        assert outcomes["rate_limited"] == statuses.count(429)


async def test_rate_limit_answer(http: httpx.AsyncClient) -> None:
    async with running_simulator(rate_limit_rate=1) as sim:
        response = await _post(http, sim.url, 1)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"


async def test_token_required(http: httpx.AsyncClient) -> None:
    async with running_simulator(token="t0k") as sim:
        assert (await _post(http, sim.url, 1)).status_code == 401
        response = await http.post(
            f"{sim.url}/send/1", json=_message(1), headers={"Authorization": "Bearer t0k"}
        )
        assert response.status_code == 200


async def test_hangs_are_dropped_after_the_cap(http: httpx.AsyncClient) -> None:
    async with running_simulator(hang_rate=1, hang_limit=0.2) as sim:
        with pytest.raises(httpx.TransportError):
            await _post(http, sim.url, 1)
        assert sim.open_connections == 0


async def test_answers_held_back_until_released(http: httpx.AsyncClient) -> None:
    async with running_simulator(reject_rate=0.5, seed=3) as sim:
        sim.hold_answers()
        ids = list(range(1, 7))
        posts = [asyncio.create_task(_post(http, sim.url, i)) for i in ids]
        while sorted(sim.held_ids) != ids:
            await sim.wait_held()
        # Decided and recorded on arrival, answered only when released.
        assert sim.stats()["requests"] == len(ids)
        assert not any(post.done() for post in posts)
        assert sorted(sim.release_answers()) == ids
        statuses = {(await post).status_code for post in posts}
        assert statuses == {200, 400}
        assert sim.held_ids == []
        assert (await _post(http, sim.url, 7)).status_code in (200, 400)  # no longer held


async def test_a_held_answer_whose_connection_drops_was_never_answered(
    http: httpx.AsyncClient,
) -> None:
    async with running_simulator() as sim:
        sim.hold_answers()
        post = asyncio.create_task(_post(http, sim.url, 1))
        await sim.wait_held()
        await sim.set_faults(down=True)  # resets every open send connection
        with pytest.raises(httpx.TransportError):
            await post
        # Accepted, and never answered: a retry with the same id may be accepted again.
        assert [outcome for _, _, outcome, _ in sim.ledger.requests_list()] == ["accepted_hang"]
        assert sim.stats()["by_outcome"] == {"accepted_hang": 1}
        assert sim.release_answers() == []


async def test_reset_sends_rst() -> None:
    async with running_simulator(reset_rate=1) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        body = orjson.dumps(_message(1))
        writer.write(
            b"POST /send/1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()


async def test_keep_alive_pipelined_and_split_requests() -> None:
    async with running_simulator(latency=5, latency_jitter=5) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        raw = b""
        for message_id in range(1, 6):
            body = orjson.dumps(_message(message_id))
            raw += b"POST /send/%d HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (
                message_id,
                len(body),
                body,
            )
        # Pipelined and cut at odd places: answers still come in order.
        for start in range(0, len(raw), 7):
            writer.write(raw[start : start + 7])
            await writer.drain()
        answers = [await reader.readuntil(b'"OK"}') for _ in range(5)]
        assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)
        assert [row[0] for row in sim.ledger.requests_list()] == [1, 2, 3, 4, 5]
        writer.close()
        await writer.wait_closed()


async def test_chunked_body_and_connection_close() -> None:
    async with running_simulator() as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        body = orjson.dumps(_message(1))
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:9], body[9:]))
        writer.write(
            b"POST /send/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )
        answer = await reader.read()  # the server closes after answering
        assert answer.startswith(b"HTTP/1.1 200 OK")
        assert answer.endswith(b'{"code":0,"message":"OK"}')
        assert sim.stats()["accepted"] == 1
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"POST /send/1 HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        # No end in sight; exactly one byte too many, so that it is all read before the close.
        (b"POST /send/1 HTTP/1.1\r\nX-Big: ".ljust(64 * 1024 + 1, b"a"), 431),
        (b"POST /send/1 HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n" + b"{" * 1048577, 413),
    ],
    ids=["not-http", "bad-length", "head-too-large", "body-too-large"],
)
async def test_malformed_requests_are_refused_and_closed(raw: bytes, status: int) -> None:
    async with running_simulator() as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(raw)
        answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 %d " % status)
        assert b"Connection: close" in answer
        assert sim.stats()["requests"] == 0
        writer.close()
        await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


async def test_connections_close_only_when_the_answer_says_so() -> None:
    async with running_simulator(control_port=0) as sim:
        body = b'{"down_for": 60}'
        change = b"POST /_sim/faults HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        # On the control port, the connection stays open for the next request.
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.control_port)
        writer.write(change + b"GET /_sim/stats HTTP/1.1\r\n\r\n")
        head, _ = await _read_response(reader)
        assert b"Connection: close" not in head
        head, stats = await _read_response(reader)
        assert orjson.loads(stats)["down"] is True
        writer.close()
        await writer.wait_closed()
        await sim.set_faults(down_for=0.05)
        await _until_up(sim)
        # On the send port it closes, and says so; so does an HTTP/1.0 request.
        message = orjson.dumps(_message(1))
        send_10 = b"POST /send/1 HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (
            len(message),
            message,
        )
        for request in (change, send_10):
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            writer.write(request)
            head, _ = await _read_response(reader)
            assert b"\r\nConnection: close\r\n" in head
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
            await sim.set_faults(down_for=0.05)
            await _until_up(sim)


async def test_down_resets_and_control_port_stays_up(http: httpx.AsyncClient) -> None:
    async with running_simulator(control_port=0) as sim:
        control = f"http://127.0.0.1:{sim.control_port}"
        response = await http.post(f"{control}/_sim/faults", json={"down": True})
        assert response.json()["down"] is True
        with pytest.raises(_RESET):
            await _post(http, sim.url, 1)
        # Still bound: no other process can take the port during the outage.
        with socket.socket() as other, pytest.raises(OSError, match="in use") as taken:
            other.bind(("127.0.0.1", sim.port))
        assert taken.value.errno == errno.EADDRINUSE
        stats = (await http.get(f"{control}/_sim/stats")).json()
        assert (stats["down"], stats["requests"]) == (True, 0)
        # Sends are for the send port only.
        assert (await _post(http, control, 1)).status_code == 404
        await http.post(f"{control}/_sim/faults", json={"down": False})
        assert (await _post(http, sim.url, 1)).status_code == 200


async def test_down_over_the_send_port_answers_first(http: httpx.AsyncClient) -> None:
    async with running_simulator() as sim:
        response = await http.post(f"{sim.url}/_sim/faults", json={"down_for": 60})
        assert response.status_code == 200
        with pytest.raises(_RESET):
            await _post(http, sim.url, 1)
        await sim.set_faults(down_for=0.05)  # a shorter window replaces it, and ends by itself
        await _until_up(sim)
        assert (await _post(http, sim.url, 1)).status_code == 200


async def test_down_drops_open_connections() -> None:
    async with running_simulator(hang_rate=1) as sim:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        body = orjson.dumps(_message(1))
        writer.write(b"POST /send/1 HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        await sim.wait_arrived([1])
        await sim.set_faults(down=True)
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()
        assert sim.open_connections == 0


async def test_periodic_outages(http: httpx.AsyncClient) -> None:
    async with running_simulator(outage_every=0.3, outage_for=0.15) as sim:
        seen = set()
        async with asyncio.timeout(10):
            while seen != {"up", "down"}:
                try:
                    await _post(http, sim.url, 1)
                    seen.add("up")
                # Reset while down (a ReadError, or a RemoteProtocolError), also
                # when an outage starts during a request or on a kept-alive connection.
                except _RESET:
                    seen.add("down")
                await asyncio.sleep(0.02)
        await sim.set_faults(outage_every=0)
        assert not sim.is_down
        assert (await _post(http, sim.url, 2)).status_code == 200


# -- hostile bodies, 429 with Retry-After, max_rps, 401/403 windows ------------------


async def test_nul_rate_answers_hostile_bytes(http: httpx.AsyncClient) -> None:
    async def answers(seed: int) -> list[tuple[int, bytes]]:
        async with running_simulator(nul_rate=1, seed=seed) as sim:
            responses = [await _post(http, sim.url, i) for i in range(1, 41)]
            assert sim.stats()["by_outcome"] == {"hostile": 40}
            assert sim.stats()["accepted"] == 0
            return [(r.status_code, r.content) for r in responses]

    seen = await answers(seed=5)
    big = [content for status, content in seen if len(content) > 1_000_000]
    assert big
    assert all(status == 500 for status, content in seen if content in big)
    assert {(s, c) for s, c in seen if c not in big} == {
        (500, b"boom\x00bad"),
        (200, b'{"code":1,"message":"a\\u0000b"}'),
        (200, b"\x00\xff\xfeOK\x00\xc3("),
    }
    assert await answers(seed=5) == seen  # picked by the seeded draw


@pytest.mark.parametrize(("retry_after", "header"), [(3, "3"), (0.25, "0.25")])
async def test_retry_after_first_attempts_of_each_id(
    http: httpx.AsyncClient, retry_after: float, header: str
) -> None:
    async with running_simulator(retry_after_first=2, retry_after=retry_after) as sim:
        statuses = []
        for message_id in (1, 2, 1, 1, 2, 2, 1):
            response = await _post(http, sim.url, message_id)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["retry-after"] == header
        assert statuses == [429, 429, 429, 200, 429, 200, 200]
        assert sim.stats()["by_outcome"] == {"retry_later": 4, "accepted": 3}
        # Counted from when it is set: the next attempt of every id is refused again.
        await sim.set_faults(retry_after_first=1)
        assert (await _post(http, sim.url, 1)).status_code == 429
        assert (await _post(http, sim.url, 1)).status_code == 200


async def test_retry_after_first_comes_before_the_random_faults(http: httpx.AsyncClient) -> None:
    async with running_simulator(retry_after_first=1, fail_rate=1) as sim:
        assert (await _post(http, sim.url, 1)).status_code == 429
        assert (await _post(http, sim.url, 1)).status_code == 500


async def test_max_rps_throttles_beyond_the_limit(http: httpx.AsyncClient) -> None:
    async with running_simulator(max_rps=5) as sim:
        started = time.monotonic()
        responses = await asyncio.gather(*(_post(http, sim.url, i) for i in range(1, 16)))
        elapsed = time.monotonic() - started
        ok = [r for r in responses if r.status_code == 200]
        throttled = [r for r in responses if r.status_code == 429]
        assert len(ok) + len(throttled) == 15
        assert {r.headers["retry-after"] for r in throttled} <= {"1"}
        assert sim.stats()["by_outcome"].get("throttled", 0) == len(throttled)
        # At most 5 in any one second: exactly 5 when the burst took less than one.
        assert len(ok) <= 5 * (int(elapsed) + 1)
        if elapsed < 1:
            assert len(ok) == 5


def test_max_rps_is_a_sliding_second() -> None:
    now = [0.0]
    api = SendApi(Ledger(), clock=time.time, monotonic=lambda: now[0])
    api.configure(Faults(max_rps=3))

    def status() -> int:
        _, answer = api.decide(b"7", None, orjson.dumps(_message(7)))
        assert isinstance(answer, bytes)
        return int(answer.split(b" ", 2)[1])

    statuses = []
    for instant in (0.0, 0.1, 0.2, 0.5, 0.9, 1.0, 1.05, 1.1, 1.15, 1.9, 2.0):
        now[0] = instant
        statuses.append(status())
    # At 1.0 the request of 0.0 has left the window, at 1.1 the one of 0.1; at 1.9 only
    # 1.0 and 1.1 are in it, at 2.0 only 1.1 and 1.9.
    assert statuses == [200, 200, 200, 429, 429, 200, 429, 200, 429, 200, 200]


def test_max_rps_fixed_counts_each_whole_second() -> None:
    now = [0.0]
    api = SendApi(Ledger(), clock=time.time, monotonic=lambda: now[0])
    api.configure(Faults(max_rps_fixed=3))

    def status() -> int:
        _, answer = api.decide(b"7", None, orjson.dumps(_message(7)))
        assert isinstance(answer, bytes)
        return int(answer.split(b" ", 2)[1])

    statuses = []
    for instant in (0.5, 0.6, 0.7, 0.8, 0.99, 1.0, 1.01, 1.02, 1.03, 2.5):
        now[0] = instant
        statuses.append(status())
    # Three in [0, 1), three more at once in [1, 2): six within 0.53 s across the edge.
    assert statuses == [200, 200, 200, 429, 429, 200, 200, 200, 429, 200]


@pytest.mark.parametrize(
    ("window", "status", "outcome", "by_outcome"),
    [
        ("unauthorized_for", 401, "unauthorized", {"unauthorized": 2, "accepted": 1}),
        ("forbidden_for", 403, "forbidden", {"forbidden": 1, "unauthorized": 1, "accepted": 1}),
    ],
)
async def test_auth_windows_end_by_themselves(
    http: httpx.AsyncClient, window: str, status: int, outcome: str, by_outcome: dict[str, int]
) -> None:
    token = {"Authorization": "Bearer good"}
    async with running_simulator(token="good") as sim:
        response = await http.post(f"{sim.url}/_sim/faults", json={window: 60})
        assert response.status_code == 200
        refused = await http.post(f"{sim.url}/send/1", json=_message(1), headers=token)
        assert refused.status_code == status
        assert refused.json()["code"] == status
        assert sim.stats()[outcome] is True
        await sim.set_faults(**{window: 0.05})  # replaces the window, which ends by itself
        await _eventually(lambda: not sim.stats()[outcome])
        allowed = await http.post(f"{sim.url}/send/1", json=_message(1), headers=token)
        assert allowed.status_code == 200
        # The token check stays.
        assert (await _post(http, sim.url, 2)).status_code == 401
        assert sim.stats()["by_outcome"] == by_outcome


# -- accepted, then answered late or never --------------------------------------------


async def test_accept_hang_records_the_id_and_never_answers() -> None:
    async with (
        running_simulator(accept_hang_rate=1) as sim,
        httpx.AsyncClient(timeout=0.3, trust_env=False) as impatient,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await _post(impatient, sim.url, 1)
        await sim.wait_arrived([1])
        assert [row[0] for row in sim.ledger.accepted_list()] == [1]
        [request] = sim.ledger.requests_list()
        assert [request[0], request[2], request[3]] == [1, "accepted_hang", True]
        assert sim.stats()["accepted"] == 1


async def test_accept_late_records_on_arrival_and_answers_after_late_by(
    http: httpx.AsyncClient,
) -> None:
    async with running_simulator(accept_late_rate=1, late_by=60_000, latency=1) as sim:
        pending = asyncio.create_task(_post(http, sim.url, 1))
        await sim.wait_arrived([1])
        assert sim.stats()["by_outcome"] == {"accepted_late": 1}
        assert [row[0] for row in sim.ledger.accepted_list()] == [1]
        assert not pending.done()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await sim.set_faults(late_by=200)
        started = time.monotonic()
        response = await _post(http, sim.url, 2)
        assert time.monotonic() - started >= 0.2
        assert response.json() == {"code": 0, "message": "OK"}
        assert sim.stats()["unique_accepted"] == 2


async def test_accepting_faults_spare_rejected_ids(http: httpx.AsyncClient) -> None:
    async with running_simulator(reject_rate=1, accept_hang_rate=0.5, accept_late_rate=0.5) as sim:
        assert (await _post(http, sim.url, 1)).status_code == 400
        assert sim.stats()["by_outcome"] == {"rejected": 1}


# -- in-process helpers: the clock, arrivals ------------------------------------------


async def test_clock_stamps_every_recorded_instant(http: httpx.AsyncClient) -> None:
    fake_now = [1_700_000_000.0]
    async with running_simulator(clock=lambda: fake_now[0]) as sim:
        await _post(http, sim.url, 1)
        fake_now[0] += 90
        await _post(http, sim.url, 2, phone="x")
        stats = sim.stats()
        assert stats["first_request_at"] == "2023-11-14T22:13:20+00:00"
        assert stats["last_request_at"] == "2023-11-14T22:14:50+00:00"
        assert [row[1] for row in sim.ledger.requests_list()] == [
            "2023-11-14T22:13:20+00:00",
            "2023-11-14T22:14:50+00:00",
        ]
        assert sim.ledger.accepted_list()[0][2] == "2023-11-14T22:13:20+00:00"


async def test_arrived_ids_and_waiting_for_arrivals(http: httpx.AsyncClient) -> None:
    async with running_simulator(fail_rate=1) as sim:
        waiting = asyncio.create_task(sim.wait_arrived({1, 2}))
        await _post(http, sim.url, 1)
        await asyncio.sleep(0)
        assert not waiting.done()
        await http.post(f"{sim.url}/send/2", content=b"not json")  # arrived, though invalid
        async with asyncio.timeout(10):
            await waiting
        assert sim.arrived_ids == {1, 2}
        await sim.wait_arrived([1])  # already there: returns at once
        sim.reset()
        assert sim.arrived_ids == set()


def test_faults_add_up_to_at_most_one() -> None:
    with pytest.raises(ValueError, match="add up to at most 1"):
        Faults().replace({"accept_hang_rate": 0.5, "accept_late_rate": 0.3, "fail_rate": 0.3})
    assert Faults().replace({"accept_hang_rate": 0.5, "fail_rate": 0.5}).fail_rate == 0.5
    assert Faults().replace({"hang_rate": 0.1, "reset_rate": 0.2, "fail_rate": 0.7}).fail_rate


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--nul-rate", "2", "must be a probability between 0 and 1"),
        ("--max-rps", "1.5", "must be a whole number >= 0"),
        ("--retry-after-first", "-1", "must be a whole number >= 0"),
        ("--retry-after", "-1", "must be a number >= 0"),
        ("--late-by", "soon", "must be a number >= 0"),
        ("--unauthorized-for", "0", "must be a number of seconds > 0"),
        ("--forbidden-for", "nan", "must be a number of seconds > 0"),
    ],
)
def test_bad_options_are_refused(
    capsys: pytest.CaptureFixture[str], option: str, value: str, error: str
) -> None:
    with pytest.raises(SystemExit):
        cli_parser().parse_args(["provider-sim", option, value])
    assert f"argument {option}: {error}" in capsys.readouterr().err


def test_options_that_do_not_add_up_are_refused() -> None:
    args = cli_parser().parse_args(["provider-sim", "--fail-rate", "0.7", "--hang-rate", "0.7"])
    with pytest.raises(SystemExit, match="add up to at most 1"):
        run_simulator(args)


async def _wait_for_port(port: int, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(20):
        while True:
            assert proc.returncode is None, "provider-sim exited"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def test_command(http: httpx.AsyncClient, tmp_path: Path) -> None:
    # Sockets bound here and inherited (--fd, --control-fd): no other process takes the ports.
    send, control_socket = bound_socket(), bound_socket()
    port, control_port = port_of(send), port_of(control_socket)
    args = [
        "--fd", str(send.fileno()),
        "--control-fd", str(control_socket.fileno()),
        "--token", "cli-token",
        "--reject-rate", "1",
        "--latency", "1",
        "--seed", "4",
        "--max-rps", "1000",
        "--late-by", "250",
        "--forbidden-for", "600",
    ]  # fmt: skip
    with (tmp_path / "provider-sim.log").open("wb") as log:
        with send, control_socket:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "provider-sim", *args,
                stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
                pass_fds=(send.fileno(), control_socket.fileno()),
            )  # fmt: skip
        try:
            # The control port listens once the send port does.
            await _wait_for_port(control_port, proc)
            url = f"http://127.0.0.1:{port}"
            control = f"http://127.0.0.1:{control_port}"
            authorised = {"Authorization": "Bearer cli-token"}
            response = await http.post(f"{url}/send/1", json=_message(1), headers=authorised)
            assert response.status_code == 403
            await http.post(f"{control}/_sim/faults", json={"forbidden_for": 0.01})

            async def allowed() -> bool:
                return not (await http.get(f"{control}/_sim/stats")).json()["forbidden"]

            await _eventually(allowed)
            assert (await _post(http, url, 1)).status_code == 401
            response = await http.post(f"{url}/send/1", json=_message(1), headers=authorised)
            assert response.status_code == 400
            faults = (await http.get(f"{control}/_sim/faults")).json()
            assert faults["reject_rate"] == 1.0
            assert faults["seed"] == 4
            assert faults["max_rps"] == 1000
            assert faults["late_by"] == 250.0
        finally:
            if proc.returncode is None:
                proc.terminate()
            async with asyncio.timeout(10):
                await proc.wait()
    assert proc.returncode == 0, (tmp_path / "provider-sim.log").read_text()
    assert "provider simulator listening" in (tmp_path / "provider-sim.log").read_text()
