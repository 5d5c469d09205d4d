"""Live progress, metrics, logs, health and graceful shutdown, with real processes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import redis.asyncio
from tortoise.expressions import F

from models import Mailing, MailingStatus, Message, MessageStatus
from tasks import hooks
from tests.conftest import REDIS_URL, TEST_ENV
from tests.support.api import Subscription
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    metric_values,
    start_mailing,
    stats_of,
    utcnow,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.slow

PROGRESS = """subscription($id: ID!) {
  mailingProgress(id: $id) { status stats { total pending sent failed expired cancelled } }
}"""


@pytest.fixture
async def sim(db: str) -> AsyncIterator[Simulator]:
    simulator = Simulator("--seed", "3")
    yield simulator
    await simulator.close()


async def test_health_endpoints_need_no_token(served_api: str) -> None:
    async with httpx.AsyncClient(base_url=served_api) as http:
        alive = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
    assert ready.status_code == 200
    expected = {"status": "ok", "database": "ok"} | ({"redis": "ok"} if REDIS_URL else {})
    assert ready.json() == expected


async def test_request_id_is_echoed_or_made(served_api: str) -> None:
    async with httpx.AsyncClient(base_url=served_api) as http:
        given = await http.get("/healthz", headers={"X-Request-ID": "trace-42"})
        made = await http.get("/healthz")
        hostile = await http.get("/healthz", headers={"X-Request-ID": 'a b;"<x>' * 20})
    assert given.headers["x-request-id"] == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


async def test_progress_streams_coalesced_events_until_finished(
    sim: Simulator, served_api: str
) -> None:
    await add_clients(3000)
    await sim.faults(latency=20)
    worker = Worker(sim, SEND_CONCURRENCY="64")
    subscription = None
    try:
        # Far in the future until the subscription has seen it waiting, then
        # moved to now: how long connecting takes cannot matter.
        mailing = await start_mailing(start_at=utcnow() + timedelta(hours=1))
        subscription = await Subscription.connect(served_api)
        assert (await subscription.receive())["type"] == "connection_ack"
        started = time.monotonic()
        await subscription.subscribe(PROGRESS, {"id": str(mailing.id)})
        first = await subscription.receive()
        assert first["type"] == "next", first
        events = [first["payload"]["data"]["mailingProgress"]]
        now = utcnow()
        await Mailing.filter(id=mailing.id).update(
            start_at=now, updated_at=now, revision=F("revision") + 1
        )
        await hooks.tend_mailing(mailing.id, now)
        while True:
            message = await subscription.receive()
            if message["type"] == "complete":
                break
            assert message["type"] == "next", message
            events.append(message["payload"]["data"]["mailingProgress"])
            if len(events) == 2 and REDIS_URL:
                assert await _hub_subscriptions() == 1
        elapsed = time.monotonic() - started
    finally:
        if subscription is not None:
            await subscription.close()
        worker.stop()
    assert events[0]["status"] == "SCHEDULED"
    assert events[-1]["status"] == "FINISHED"
    assert events[-1]["stats"]["sent"] == 3000
    sent = [event["stats"]["sent"] for event in events]
    assert sent == sorted(sent)
    assert len(events) >= 4, "the counts should climb in several steps"
    # Coalesced: a few events a second, not one per message.
    assert len(events) <= elapsed * 6 + 4
    if REDIS_URL:
        await _assert_no_pattern_subscriptions_left()


async def _hub_subscriptions() -> int:
    """Pattern subscriptions held by this run's API (other runs may share this Redis)."""
    name = f"mailings-progress:{TEST_ENV['QUEUE_NAME']}"
    client = redis.asyncio.Redis.from_url(REDIS_URL or "")
    try:
        clients = await client.client_list()
    finally:
        await client.aclose()
    return sum(int(c["psub"]) for c in clients if c.get("name") == name)


async def _assert_no_pattern_subscriptions_left() -> None:
    async def none_left() -> bool:
        return await _hub_subscriptions() == 0

    await wait_until(none_left, timeout=5)


async def test_metrics_show_the_workers_sends(sim: Simulator, served_api: str) -> None:
    await add_clients(50)
    worker = Worker(sim)
    try:
        mailing = await start_mailing()
        await wait_for_status(mailing.id, MailingStatus.FINISHED)
        sent = await worker.metrics_once_sent(50)
    finally:
        worker.stop()
    async with httpx.AsyncClient(base_url=served_api) as http:
        await http.post("/graphql", json={"query": "{ statistics { totals { sent } } }"})
        values = metric_values((await http.get("/metrics")).text)
    # The worker's figures, on the worker.
    assert sent['mailings_send_requests_total{outcome="sent"}'] == 50
    assert sent["mailings_send_latency_seconds_count"] == 50
    assert sent['mailings_send_latency_seconds_bucket{le="+Inf"}'] == 50
    # The API's own figures and the database's gauges, on the API.
    assert values['mailings_messages{status="SENT"}'] == 50
    assert values['mailings_mailings{status="FINISHED"}'] == 1
    assert 'mailings_queue_depth{kind="pending"}' in values
    assert values['mailings_graphql_operations_total{outcome="ok",type="query"}'] >= 1
    assert not [name for name in values if name.startswith("mailings_send_")]


async def test_one_message_can_be_followed_through_the_json_logs(sim: Simulator) -> None:
    await add_clients(20)
    await sim.faults(fail_rate=0.5)
    worker = Worker(sim)
    try:
        mailing = await start_mailing()
        await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=30)
    finally:
        worker.stop()
    retried = await Message.filter(mailing_id=mailing.id, attempts__gt=1).first()
    assert retried is not None
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    story = [line for line in lines if line.get("message_id") == retried.id]
    events = [line["event"] for line in story]
    assert events.count("message will be retried") == retried.attempts - 1
    assert events[-1] == "message sent"
    for line in story:
        assert line["mailing_id"] == mailing.id
        assert line["client_id"] == retried.client_id
        assert "timestamp" in line
        assert "level" in line
    mailing_lines = [line for line in lines if line.get("mailing_id") == mailing.id]
    assert any(line["event"] == "mailing audience built" for line in mailing_lines)


async def test_sigterm_mid_batch_hands_everything_back(sim: Simulator) -> None:
    await add_clients(200)
    await sim.faults(latency=400)
    worker = Worker(sim, SEND_CONCURRENCY="40", SEND_TIMEOUT="5", SEND_LEASE="60")
    mailing = await start_mailing()

    async def some_sent() -> bool:
        return (await stats_of(mailing.id))["sent"] >= 40

    await wait_until(some_sent, timeout=20)
    worker.proc.send_signal(signal.SIGTERM)
    try:
        assert await asyncio.to_thread(worker.proc.wait, 60) == 0
    finally:
        worker.stop()
    assert "engine stopped" in worker.log()
    # Nothing is left held by the stopped worker: every pending message is
    # due now, not at the end of a 60 s lease.
    held = await Message.filter(
        mailing_id=mailing.id,
        status=MessageStatus.PENDING,
        next_attempt_at__gt=utcnow() + timedelta(seconds=5),
    ).count()
    assert held == 0
    successor = Worker(sim, SEND_CONCURRENCY="40")
    try:
        await wait_for_status(mailing.id, MailingStatus.FINISHED, timeout=30)
    finally:
        successor.stop()
    assert (await stats_of(mailing.id))["sent"] == 200
    assert (await sim.stats())["duplicates"] == 0


async def test_api_sigterm_closes_open_subscriptions(db: str) -> None:
    from websockets.exceptions import ConnectionClosed

    from tests.conftest import serve_api
    from tests.support.factories import make_mailing

    mailing = await make_mailing(status=MailingStatus.RUNNING)
    url, api = serve_api(log_name="api-sigterm")
    subscription = await Subscription.connect(url)
    try:
        assert (await subscription.receive())["type"] == "connection_ack"
        await subscription.subscribe(PROGRESS, {"id": str(mailing.id)})
        assert (await subscription.receive())["type"] == "next"
        api.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            await subscription.receive()
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert await asyncio.to_thread(api.wait, 15) in (0, -signal.SIGTERM)
        assert "Finished server process" in api.log_path.read_text()  # type: ignore[attr-defined]
    finally:
        await subscription.close()
        if api.poll() is None:
            api.kill()
            api.wait()
