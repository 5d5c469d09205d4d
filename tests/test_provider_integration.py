"""Every ProviderClient stack against the real simulator on loopback, fault by fault."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from provider_sim import HANG_LIMIT, running_simulator
from settings import Settings
from tasks.provider import AiohttpProviderClient, ProviderClient, make_provider_client
from tests.conftest import bound_socket, port_of
from tests.support.engine import Simulator, wait_until

PHONE = "79001234567"
MakeClient = Callable[..., ProviderClient]


@pytest.fixture(params=["pyreqwest", "httpx", "aiohttp"])
async def make_client(request: pytest.FixtureRequest) -> AsyncIterator[MakeClient]:
    """``make_client(url, **settings)``: a client of the parametrised stack, closed afterwards."""
    clients: list[ProviderClient] = []

    def make(url: str, **overrides: Any) -> ProviderClient:
        values: dict[str, Any] = {"send_timeout": 5.0, "send_concurrency": 16}
        settings = Settings(
            provider_url=url, provider_http=request.param, **{**values, **overrides}
        )
        client = make_provider_client(settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _eventually(check: Callable[[], bool]) -> None:
    for _ in range(300):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 3 s")


async def test_sent_and_recorded(make_client: MakeClient) -> None:
    async with running_simulator() as sim:
        client = make_client(sim.url)
        results = [await client.send(i, PHONE, f"text {i}") for i in (1, 2, 3)]
        again = await client.send(2, PHONE, "text 2")
        assert [r.kind for r in [*results, again]] == ["sent"] * 4
        assert all(r.error is None and r.status_code == 200 for r in results)
        stats = sim.stats()
        assert stats["accepted"] == 4
        assert stats["unique_accepted"] == 3
        assert stats["duplicates"] == 1
        assert [row[:2] + row[3:] for row in sim.ledger.accepted_list()] == [
            [1, 1, 79001234567],
            [2, 2, 79001234567],
            [3, 1, 79001234567],
        ]


async def test_concurrent_sends_share_the_pool(make_client: MakeClient) -> None:
    async with running_simulator(latency=20) as sim:
        # What is shown is the pool, not speed: a loaded machine may take seconds.
        client = make_client(
            sim.url, send_concurrency=50, send_timeout=60.0, send_connect_timeout=30.0
        )
        results = await asyncio.gather(*(client.send(i, PHONE, "x") for i in range(1, 201)))
        assert {r.kind for r in results} == {"sent"}
        assert sim.stats()["unique_accepted"] == 200


async def test_latency(make_client: MakeClient) -> None:
    async with running_simulator(latency=150, latency_jitter=20) as sim:
        result = await make_client(sim.url).send(1, PHONE, "x")
        assert result.kind == "sent"
        assert 0.12 <= result.latency < 10  # this request's own, on a machine however loaded


async def test_server_error(make_client: MakeClient) -> None:
    async with running_simulator(fail_rate=1.0) as sim:
        result = await make_client(sim.url).send(1, PHONE, "x")
        assert result.kind == "transient"
        assert result.status_code == 500
        assert result.error == 'HTTP 500: {"code":500,"message":"simulated internal error"}'
        assert sim.stats()["accepted"] == 0


async def test_connection_reset(make_client: MakeClient) -> None:
    async with running_simulator(reset_rate=1.0) as sim:
        client = make_client(sim.url)
        for message_id in (1, 2):
            result = await client.send(message_id, PHONE, "x")
            assert result.kind == "transient"
            assert result.error == "connection reset"
            assert result.status_code is None
        await sim.set_faults(reset_rate=0.0)
        assert (await client.send(3, PHONE, "x")).kind == "sent"


async def test_hang_times_out_and_frees_the_server(make_client: MakeClient) -> None:
    async with running_simulator(hang_rate=1.0) as sim:
        # The backstop (send_timeout + send_lease) is what lets go of the
        # connection in reqwest, which a cancelled await does not abort.
        client = make_client(sim.url, send_timeout=0.3, send_lease=1.0)
        result = await client.send(1, PHONE, "x")
        assert result.kind == "transient"
        assert result.error == "timeout"
        assert 0.3 <= result.latency < HANG_LIMIT / 4  # the timeout, not the hang, ended it
        # The client hung up, so the simulator holds nothing for that request.
        await _eventually(lambda: sim.open_connections == 0)


async def test_an_answer_that_arrived_while_the_loop_stood_still_is_read(
    make_client: MakeClient,
) -> None:
    # The loop stands still (here a blocking call; in a worker, SIGSTOP or a VM
    # pause) for longer than the time limit while the answer arrives: the
    # answer is read, not timed out. Before, every stack's timer fired first.
    sim = Simulator("--latency", "400")  # a process: it answers while this loop stands still
    try:
        client = make_client(sim.url, send_timeout=1.0)
        assert (await client.send(1, PHONE, "warm")).kind == "sent"  # connected, imported
        send = asyncio.create_task(client.send(2, PHONE, "x"))

        async def arrived() -> bool:
            return any(message_id == 2 for message_id, *_ in await sim.requests())

        await wait_until(arrived, timeout=30)
        assert not send.done()  # its answer is still to come, or unread
        time.sleep(2.0)  # noqa: ASYNC251 - the stall under test: twice the limit
        result = await send
        assert result.kind == "sent", result
        assert (await sim.stats())["requests"] == 2
    finally:
        await sim.close()


async def test_rate_limited_with_retry_after(make_client: MakeClient) -> None:
    async with running_simulator(rate_limit_rate=1.0) as sim:
        result = await make_client(sim.url).send(1, PHONE, "x")
        assert result.kind == "rate_limited"
        assert result.status_code == 429
        assert result.retry_after == 1.0


async def test_permanent_rejection_is_the_same_on_retry(make_client: MakeClient) -> None:
    async with running_simulator(reject_rate=1.0) as sim:
        client = make_client(sim.url)
        first = await client.send(7, PHONE, "x")
        retry = await client.send(7, PHONE, "x")
        assert first.kind == retry.kind == "rejected"
        assert first.status_code == 400
        assert first.error is not None
        assert "permanent rejection" in first.error
        assert sim.stats()["by_outcome"] == {"rejected": 2}


async def test_garbage(make_client: MakeClient) -> None:
    async with running_simulator(garbage_rate=1.0, seed=1) as sim:
        client = make_client(sim.url)
        results = [await client.send(i, PHONE, "x") for i in range(1, 31)]
        assert {r.kind for r in results} == {"transient"}
        assert {r.status_code for r in results} == {200}
        errors = {r.error.split(":")[0] for r in results if r.error}
        assert errors == {"bad body", "provider code 1"}
        assert sim.stats()["accepted"] == 0


async def test_down_is_reset_then_recovers(make_client: MakeClient) -> None:
    async with running_simulator() as sim:
        client = make_client(sim.url)
        assert (await client.send(1, PHONE, "x")).kind == "sent"
        await sim.set_faults(down=True)
        result = await client.send(2, PHONE, "x")
        assert result.kind == "transient"
        assert result.error == "connection reset"  # the port stays bound through an outage
        await sim.set_faults(down=False)
        assert (await client.send(3, PHONE, "x")).kind == "sent"
        assert [row[0] for row in sim.ledger.accepted_list()] == [1, 3]


async def test_outage_for_a_while(make_client: MakeClient) -> None:
    async with running_simulator() as sim:
        client = make_client(sim.url)
        await sim.set_faults(down_for=60)
        down = await client.send(1, PHONE, "x")
        assert down.kind == "transient"
        assert down.error == "connection reset"
        await sim.set_faults(down_for=0.05)  # replaces the window, which ends by itself
        await _eventually(lambda: not sim.is_down)
        assert (await client.send(1, PHONE, "x")).kind == "sent"


async def test_token(make_client: MakeClient) -> None:
    async with running_simulator(token="sim-token") as sim:
        good = await make_client(sim.url, provider_token="sim-token").send(1, PHONE, "x")
        assert good.kind == "sent"
        missing = await make_client(sim.url).send(2, PHONE, "x")
        wrong = await make_client(sim.url, provider_token="wrong-token").send(3, PHONE, "x")
        for result in (missing, wrong):
            assert result.kind == "unauthorized"
            assert result.status_code == 401
        assert "wrong-token" not in str(wrong)
        assert sim.stats()["by_outcome"] == {"accepted": 1, "unauthorized": 2}


async def test_nothing_listening(make_client: MakeClient) -> None:
    # Bound, never listening: refused, and no other process can listen there meanwhile.
    with bound_socket() as nothing_listens:
        result = await make_client(f"http://127.0.0.1:{port_of(nothing_listens)}").send(
            1, PHONE, "x"
        )
    assert result.kind == "transient"
    assert result.error == "connection refused"


async def test_a_cancelled_send_stays_cancelled(make_client: MakeClient) -> None:
    # The engine cancels sends when it stops: a timeout must not swallow that.
    async with running_simulator(hang_rate=1.0) as sim:
        client = make_client(sim.url, send_timeout=5.0)
        send = asyncio.create_task(client.send(1, PHONE, "x"))
        await sim.wait_arrived([1])
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send


async def test_timeouts_of_many_sends_expire_in_order() -> None:
    async with running_simulator(hang_rate=1.0) as sim:
        client = AiohttpProviderClient(Settings(provider_url=sim.url, send_timeout=0.3))
        try:
            first = asyncio.create_task(client.send(1, PHONE, "x"))
            await sim.wait_arrived([1])
            rest = [asyncio.create_task(client.send(i, PHONE, "x")) for i in range(2, 6)]
            results = await asyncio.gather(first, *rest)
        finally:
            await client.aclose()
    assert [r.error for r in results] == ["timeout"] * 5
    assert all(0.3 <= r.latency < HANG_LIMIT / 4 for r in results)


async def test_a_cancel_racing_the_timeout_wins() -> None:
    async with running_simulator(hang_rate=1.0) as sim:
        client = AiohttpProviderClient(Settings(provider_url=sim.url, send_timeout=0.2))
        send = asyncio.create_task(client.send(1, PHONE, "x"))

        class CancelledToo(set[int]):
            """The caller cancels the send in the very step the watchdog expires it."""

            def add(self, token: int) -> None:
                super().add(token)
                send.cancel()

        client._deadlines._expired = CancelledToo()
        try:
            with pytest.raises(asyncio.CancelledError):
                await send
        finally:
            await client.aclose()
