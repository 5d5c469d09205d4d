"""The service's own infrastructure fails, and the promise holds (issue 19, SPEC section 3).

Real workers reach PostgreSQL (and the API reaches Redis) through a
fault-injecting proxy (``tests/support/fault_proxy.py``) that resets,
black-holes or refuses connections. The oracle is the simulator's ledger:
how many times the provider accepted each msgId. Every message must end
SENT, accepted exactly once, with every worker still alive.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import httpx
import pytest

from models import MailingStatus
from tests.conftest import BACKEND, DATABASE_URL, REDIS_URL, serve_api, stop_process
from tests.support.api import MAILING_RESULT, hours, iso, utcnow
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    start_mailing,
    stats_of,
    wait_for_status,
    wait_until,
)
from tests.support.fault_proxy import FaultProxy, fault_proxy

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL and Redis over TCP")

_MESSAGES = 300
# Short leases and time limits, so that an outage of a few seconds outlasts them.
_ENV = {
    "SEND_CONCURRENCY": "40",
    "SEND_TIMEOUT": "1.0",
    "SEND_LEASE": "3",
    "REAP_GRACE": "2",
    "DATABASE_CONNECT_TIMEOUT": "1",
    "DATABASE_COMMAND_TIMEOUT": "2",
    "DATABASE_STATEMENT_TIMEOUT": "2",
    "STOP_GRACE": "60",
}


@pytest.fixture
async def sim(db: str) -> AsyncIterator[Simulator]:
    # Answers take a while, so that requests are in flight when the faults land.
    simulator = Simulator("--seed", "19", "--latency", "150")
    yield simulator
    await simulator.close()


@pytest.fixture
def pg_proxy(db: str) -> Iterator[FaultProxy]:
    with fault_proxy(DATABASE_URL) as proxy:
        yield proxy


def _workers(sim: Simulator, proxy: FaultProxy, n: int = 2) -> list[Worker]:
    return [Worker(sim, DATABASE_URL=proxy.url(DATABASE_URL), **_ENV) for _ in range(n)]


async def _accepted_per_id(sim: Simulator) -> Counter[int]:
    return Counter(
        int(message_id)
        for message_id, _arrived, _outcome, accepted in await sim.requests()
        if message_id is not None and accepted
    )


async def _sent_at_least(sim: Simulator, n: int) -> bool:
    return sum((await _accepted_per_id(sim)).values()) >= n


async def _sending(sim: Simulator, proxy: FaultProxy) -> tuple[int, list[Worker]]:
    """A mailing of ``_MESSAGES`` sent by two workers through ``proxy``, 20 of them accepted."""
    await add_clients(_MESSAGES)
    workers = _workers(sim, proxy)
    mailing = await start_mailing()
    await wait_until(lambda: _sent_at_least(sim, 20), timeout=120)
    return mailing.id, workers


async def _every_message_sent_once(sim: Simulator, mailing_id: int, workers: list[Worker]) -> None:
    await wait_for_status(mailing_id, MailingStatus.FINISHED, timeout=180)
    stats = await stats_of(mailing_id)
    assert stats["sent"] == _MESSAGES, stats
    accepted = await _accepted_per_id(sim)
    assert len(accepted) == _MESSAGES
    twice = {message_id: n for message_id, n in accepted.items() if n > 1}
    assert not twice, f"accepted more than once: {twice}"
    for worker in workers:
        assert worker.proc.poll() is None, worker.log()[-3000:]


async def test_a_reset_storm_on_the_database_sends_each_message_once(
    sim: Simulator, pg_proxy: FaultProxy
) -> None:
    # Before: a reset during BEGIN left a loop's task naming a dead connection
    # for good; the workers stayed alive, idle, and their leases ran out.
    mailing_id, workers = await _sending(sim, pg_proxy)
    connected = pg_proxy.connections_made
    for _ in range(16):
        pg_proxy.reset()
        await asyncio.sleep(0.5)  # the storm's rhythm, not a wait for anything
    await _every_message_sent_once(sim, mailing_id, workers)
    # The storm broke connections in use: the workers came back on new ones.
    # (Whether a reset also failed a loop's round, counted on /metrics as
    # mailings_loop_failures_total, depends on where it lands.)
    assert pg_proxy.connections_made > connected


async def test_a_black_hole_longer_than_the_lease_sends_nothing_twice(
    sim: Simulator, pg_proxy: FaultProxy
) -> None:
    # Before: answers that arrived during the outage waited in a recorder's
    # memory; at restore the sweeps reaped those leases and sent them again.
    mailing_id, workers = await _sending(sim, pg_proxy)
    pg_proxy.black_hole()
    await asyncio.sleep(8)  # the outage: longer than the 3 s lease
    pg_proxy.reset()
    pg_proxy.restore()
    await _every_message_sent_once(sim, mailing_id, workers)


async def test_a_worker_stopped_during_an_outage_writes_its_outcomes_when_the_database_returns(
    sim: Simulator, pg_proxy: FaultProxy
) -> None:
    # Before: SIGTERM during an outage exited with the outcomes in memory
    # ("engine did not stop in time"); the other worker sent them again.
    mailing_id, (stopping, staying) = await _sending(sim, pg_proxy)
    pg_proxy.black_hole()
    stopping.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(6)  # the outage goes on while the worker stops
    assert stopping.proc.poll() is None, "it waits for the database, within STOP_GRACE"
    pg_proxy.reset()
    pg_proxy.restore()
    await asyncio.to_thread(stopping.proc.wait, 120)
    assert "outcomes not written before the stop grace ended" not in stopping.log()
    await _every_message_sent_once(sim, mailing_id, [staying])


async def test_a_mutation_answers_while_redis_holds_every_byte(db: str) -> None:
    # Before: the engine's wake was awaited after the commit, for as long as
    # redis-py waited on a socket that never answered (REDIS_TIMEOUT, 5 s here).
    assert REDIS_URL is not None
    with fault_proxy(REDIS_URL) as redis_proxy:
        # The rate limits' Redis calls have a bound of their own (0.5 s, paid by
        # one request in STORE_RETRY seconds: tests/test_rate_limits.py): off,
        # so that what is timed is the wake.
        env = {
            "REDIS_URL": redis_proxy.url(REDIS_URL),
            "REDIS_TIMEOUT": "5",
            "API_RATE_LIMIT": "off",
            "API_AUTH_FAILURE_LIMIT": "off",
        }
        url, proc = serve_api(env, log_name="api-redis")
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                flowing = await _timed_mutation(client, url)
                redis_proxy.black_hole()
                held = await _timed_mutation(client, url)
            # The promise: about a second beyond what the mutation costs with
            # Redis flowing; redis-py alone would hold it REDIS_TIMEOUT.
            assert held < flowing + 1.5, (held, flowing)
            log = proc.log_path.read_text()  # type: ignore[attr-defined]
            assert "could not wake the engine" in log
        finally:
            redis_proxy.restore()
            stop_process(proc)


async def _timed_mutation(client: httpx.AsyncClient, url: str) -> float:
    """Seconds ``createMailing`` takes to answer (a mailing, whatever the wake did)."""
    query = f"""mutation($input: MailingInput!) {{
        createMailing(input: $input) {{ {MAILING_RESULT} }} }}"""
    start = utcnow()
    variables = {"input": {"text": "hi", "startAt": iso(start), "endAt": iso(start + hours(1))}}
    began = time.monotonic()
    response = await client.post(f"{url}/graphql", json={"query": query, "variables": variables})
    took = time.monotonic() - began
    assert response.json()["data"]["createMailing"]["__typename"] == "Mailing"
    return took


async def test_a_worker_frozen_past_its_lease_repeats_at_most_its_requests_in_flight(
    sim: Simulator, pg_proxy: FaultProxy
) -> None:
    # Frozen (SIGSTOP, a VM pause), its leases end and the other worker sends
    # those messages. Before: resumed, it sent the messages it had claimed and
    # was waiting to start (PROVIDER_MAX_RPS spaces the starts out), though
    # their leases had ended, and its requests in flight, timed out across
    # the freeze, opened its breaker.
    env = {
        **_ENV,
        "PROVIDER_MAX_RPS": "40",  # claimed messages wait for their start times
        "SEND_TIMEOUT": "2",
        "SEND_LEASE": "5",
        "BREAKER_FAILURE_THRESHOLD": "3",
    }
    backstop = 2 + 5  # SEND_TIMEOUT + SEND_LEASE: reqwest's own timer (tasks/provider.py)
    await sim.faults(latency=500)  # requests in flight when the freeze lands
    await add_clients(_MESSAGES)
    frozen, other = [Worker(sim, DATABASE_URL=pg_proxy.url(DATABASE_URL), **env) for _ in range(2)]
    mailing = await start_mailing()
    await wait_until(lambda: _sent_at_least(sim, 20), timeout=120)
    frozen.proc.send_signal(signal.SIGSTOP)
    frozen_at = time.time()  # the simulator stamps arrivals on this same clock
    try:
        # Past its lease and the other worker's REAP_GRACE: the other worker
        # takes its messages and finishes the mailing. And past the backstop,
        # so that its requests in flight time out across the freeze.
        try:
            await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=180)
        except AssertionError:
            raise AssertionError(
                f"not finished; the other worker:\n{other.log()[-5000:]}"
            ) from None
        await asyncio.sleep(max(0.0, frozen_at + backstop + 1 - time.time()))
    finally:
        resumed_at = time.time()
        frozen.proc.send_signal(signal.SIGCONT)
    await wait_until(lambda: _ready(frozen), timeout=120)
    await wait_until(lambda: _nothing_in_flight(frozen), timeout=60)
    requests = [
        (int(message_id), datetime.fromisoformat(arrived).timestamp(), accepted)
        for message_id, arrived, _outcome, accepted in await sim.requests()
        if message_id is not None
    ]
    accepted_before = {m for m, at, accepted in requests if accepted and at < resumed_at}
    resent = sorted({m for m, at, _ in requests if at >= resumed_at and m in accepted_before})
    # A request started just before the freeze may leave just after it (reqwest's
    # thread had not written it yet): in flight, not a claim whose lease ended.
    # Starts are 1/40 s apart, so only one or two can be caught so.
    assert len(resent) <= _LEFT_LATE, f"sent again after the resume, leases over: {resent}"
    # What is repeated is only what it had in flight when it froze: asked
    # before the freeze, or started before it and left after it (above).
    accepted = Counter(m for m, _, ok in requests if ok)
    assert len(accepted) == _MESSAGES
    in_flight = {m for m, at, _ in requests if at < frozen_at} | set(resent)
    repeated = {m for m, n in accepted.items() if n > 1}
    assert repeated <= in_flight, repeated - in_flight
    assert len(repeated) <= int(env["SEND_CONCURRENCY"]), len(repeated)
    # A freeze is not the provider's fault: its breaker never opened.
    assert frozen.metrics().get("mailings_breaker_openings_total", 0.0) == 0.0
    assert frozen.proc.poll() is None
    assert other.proc.poll() is None
    # The scenario happened: it had claimed messages not started yet, and
    # enough requests in flight to open its breaker were they held against it.
    log = frozen.log()
    handed_back = log.count("lease too short to send; handed back unsent")
    assert handed_back > _LEFT_LATE, log[-3000:]
    assert log.count("request timed out across a freeze") >= 3, log[-3000:]


# Requests a frozen worker started may leave after it resumes (see below).
_LEFT_LATE = 3


async def _nothing_in_flight(worker: Worker) -> bool:
    gauges = [v for k, v in worker.metrics().items() if k.startswith("mailings_send_in_flight")]
    return bool(gauges) and sum(gauges) == 0


async def _ready(worker: Worker) -> bool:
    # Resumed, its loops have gone round again: /readyz says so.
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            return (await client.get(f"{worker.metrics_url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False


async def _readyz(worker: Worker) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{worker.metrics_url}/readyz")
    body: dict[str, object] = response.json()
    return response.status_code, body


async def test_a_worker_whose_loops_make_no_progress_is_not_ready_then_exits(
    sim: Simulator, pg_proxy: FaultProxy
) -> None:
    # Before: the heartbeat kept going while every loop failed, so no probe
    # noticed a worker alive and idle.
    worker = Worker(
        sim,
        DATABASE_URL=pg_proxy.url(DATABASE_URL),
        **{**_ENV, "LOOP_STALL_UNREADY": "3", "LOOP_STALL_EXIT": "20"},
    )
    await wait_until(lambda: _ready(worker), timeout=120)
    pg_proxy.refuse()

    async def names_a_stalled_loop() -> bool:
        status, body = await _readyz(worker)
        return status == 503 and "dispatcher" in str(body.get("loops"))

    await wait_until(names_a_stalled_loop, timeout=120)
    assert any("mailings_loop_failures" in key for key in worker.metrics())
    # Past LOOP_STALL_EXIT it stops itself, for its supervisor to start another.
    await asyncio.to_thread(worker.proc.wait, 180)
    assert "a worker loop made no progress" in worker.log()


async def test_a_worker_whose_stop_grace_ends_in_an_outage_says_how_many_outcomes_it_lost(
    sim: Simulator, pg_proxy: FaultProxy
) -> None:
    # The outage outlasts its STOP_GRACE: it exits, and the log says what it could not write.
    await add_clients(_MESSAGES)
    worker = Worker(sim, DATABASE_URL=pg_proxy.url(DATABASE_URL), **{**_ENV, "STOP_GRACE": "3"})
    await sim.faults(latency=800)  # requests still in flight when the outage begins
    await start_mailing()
    await wait_until(lambda: _sent_at_least(sim, 20), timeout=120)
    pg_proxy.black_hole()
    worker.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(worker.proc.wait, 120)
    pg_proxy.restore()
    lines = [line for line in worker.log().splitlines() if "stop grace ended" in line]
    assert len(lines) == 1, worker.log()[-3000:]
    assert '"unwritten":' in lines[0]
