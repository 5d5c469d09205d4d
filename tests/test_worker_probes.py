"""The worker's own /healthz, /readyz and /metrics, with real worker processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models import MailingStatus, WorkerHeartbeat
from tasks.worker_metrics import forget_stopped_workers
from tests.support.engine import (
    Simulator,
    Worker,
    add_clients,
    metric_values,
    start_mailing,
    utcnow,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def sim(db: str) -> AsyncIterator[Simulator]:
    simulator = Simulator("--seed", "5")
    yield simulator
    await simulator.close()


async def _probe(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(url)


async def _healthy(worker: Worker) -> None:
    async def ok() -> bool:
        try:
            return (await _probe(f"{worker.metrics_url}/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(ok, timeout=60)


async def _down(url: str) -> bool:
    """The probe refuses, or the port is closed."""
    try:
        return (await _probe(url)).status_code != 200
    except httpx.TransportError:
        return True


async def _workers_alive(served_api: str) -> float:
    return metric_values((await _probe(f"{served_api}/metrics")).text)["mailings_workers_alive"]


async def test_probes_and_figures_of_one_worker(sim: Simulator) -> None:
    await add_clients(30)
    worker = Worker(sim)
    try:
        await _healthy(worker)
        ready = await _probe(f"{worker.metrics_url}/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["database"] == body["queue"] == "ok"
        assert body["breaker"] == {"closed": 1, "half_open": 0, "open": 0}
        assert list(body["processes"].values()) == ["ok"]

        mailing = await start_mailing()
        await wait_for_status(mailing.id, MailingStatus.FINISHED)
        values = await worker.metrics_once_sent(30)
        assert (await _probe(f"{worker.metrics_url}/nowhere")).status_code == 404
    finally:
        worker.stop()
    assert values['mailings_send_requests_total{outcome="sent"}'] == 30
    assert values["mailings_send_latency_seconds_count"] == 30
    assert values['mailings_breaker_state{state="closed"}'] == 1
    assert values["mailings_breaker_openings_total"] == 0
    assert values["mailings_leases_reaped_total"] == 0
    assert values["mailings_send_in_flight"] == 0
    assert values["mailings_pacer_limited"] == 0
    assert [name for name in values if name.startswith("mailings_worker_heartbeat")]


async def test_two_processes_one_port_and_their_sum(sim: Simulator) -> None:
    await add_clients(400)
    worker = Worker(sim, "--workers", "2", SEND_CONCURRENCY="8", SEND_BATCH_SIZE="8")
    try:
        await _healthy(worker)
        processes = (await _probe(f"{worker.metrics_url}/healthz")).json()["processes"]
        assert list(processes.values()) == ["ok", "ok"]
        mailing = await start_mailing()
        await wait_for_status(mailing.id, MailingStatus.FINISHED)
        values = await worker.metrics_once_sent(400)
    finally:
        worker.stop()
    # Both processes took part, and the one port adds them up.
    assert values['mailings_send_requests_total{outcome="sent"}'] == 400
    assert values['mailings_breaker_state{state="closed"}'] == 2
    assert len([name for name in values if name.startswith("mailings_worker_heartbeat")]) == 2


async def test_a_worker_killed_outright_shows_as_down_within_30_s(
    sim: Simulator, served_api: str
) -> None:
    worker = Worker(sim)
    await _healthy(worker)

    async def alive() -> bool:
        return await _workers_alive(served_api) == 1

    await wait_until(alive, timeout=30)
    killed = time.monotonic()
    worker.kill()
    # Its scrape fails at once: Prometheus' `up` for it is 0 from the next scrape.
    assert await _down(f"{worker.metrics_url}/healthz")
    assert await _down(f"{worker.metrics_url}/metrics")

    async def gone() -> bool:
        return await _workers_alive(served_api) == 0

    await wait_until(gone, timeout=30)
    print(
        f"\nSIGKILL: /healthz down at once; API mailings_workers_alive 0 after "
        f"{time.monotonic() - killed:.1f} s"
    )


async def test_a_process_killed_outright_takes_its_worker_down(sim: Simulator) -> None:
    worker = Worker(sim, "--workers", "2")
    await _healthy(worker)
    processes = (await _probe(f"{worker.metrics_url}/healthz")).json()["processes"]
    child = max(int(pid) for pid in processes if int(pid) != worker.proc.pid)
    killed = time.monotonic()
    os.kill(child, signal.SIGKILL)

    async def down() -> bool:
        return await _down(f"{worker.metrics_url}/healthz")

    await wait_until(down, timeout=30)
    took = time.monotonic() - killed
    assert worker.proc.wait(30) != 0
    print(f"\nSIGKILL of one process of two: the worker down after {took:.1f} s")
    assert "a worker process ended unexpectedly" in worker.log()


def _counters(text: str) -> dict[str, float]:
    """Every sample of every counter and histogram, by name and labels."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type in ("counter", "histogram"):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


async def test_no_counter_goes_down_across_a_heartbeat_clean_up(
    sim: Simulator, served_api: str
) -> None:
    await add_clients(40)
    worker = Worker(sim)
    try:
        await _healthy(worker)
        mailing = await start_mailing()
        await wait_for_status(mailing.id, MailingStatus.FINISHED)
        await worker.metrics_once_sent(40)
        # A worker that stopped a while ago, with figures of its own, as the
        # rows of stopped workers used to carry.
        long_ago = utcnow() - timedelta(hours=20)
        await WorkerHeartbeat.create(
            id="gone:1:1",
            hostname="gone",
            pid=1,
            started_at=long_ago,
            seen_at=long_ago,
            stopped_at=long_ago,
            metrics={"outcomes": {"sent": 1000}, "latency_counts": [1000], "latency_sum": 9.0},
        )
        scrapes = {}
        for name, url in (("api", served_api), ("worker", worker.metrics_url)):
            scrapes[name] = _counters((await _probe(f"{url}/metrics")).text)
        # The clean-up, as a day later: every row goes, the live worker's too
        # (its next heartbeat writes it again).
        await forget_stopped_workers(utcnow() + timedelta(days=2))
        assert await WorkerHeartbeat.all().count() == 0
        for name, url in (("api", served_api), ("worker", worker.metrics_url)):
            after = _counters((await _probe(f"{url}/metrics")).text)
            went_down = {
                key: (value, after.get(key))
                for key, value in scrapes[name].items()
                if after.get(key, -1.0) < value
            }
            assert not went_down, (name, went_down)
            assert scrapes[name], name
        assert scrapes["worker"]["mailings_send_requests_total{outcome=sent}"] == 40
    finally:
        worker.stop()
