"""Helpers for end-to-end engine tests: a real simulator, real workers, bulk clients."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from models import Mailing, MailingStats, MailingStatus
from models.db import connection, execute_many
from tasks import hooks
from tests.conftest import bound_socket, port_of, start_command, stop_process
from tests.support.factories import BULK_PHONES, make_mailing

# Fast retries and short timeouts, so faults resolve within a test.
FAST_ENGINE_ENV = {
    "SEND_TIMEOUT": "1.0",
    "SEND_CONNECT_TIMEOUT": "0.5",
    "SEND_LEASE": "3",
    "RETRY_BASE_DELAY": "0.05",
    "RETRY_MAX_DELAY": "0.5",
    "BREAKER_FAILURE_THRESHOLD": "10",
    "BREAKER_RESET_TIMEOUT": "0.5",
    "SWEEP_INTERVAL": "0.5",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Simulator:
    """A ``mailings provider-sim`` process and its introspection endpoints."""

    def __init__(self, *options: str) -> None:
        # Both ports are bound here and handed over, so no other process takes
        # one first; the send port stays bound through outages.
        send, control = bound_socket(), bound_socket()
        self.port = port_of(send)
        self.url = f"http://127.0.0.1:{self.port}"
        # Introspection goes to a control port that stays up through outages.
        control_port = port_of(control)
        fds = ["--fd", str(send.fileno()), "--control-fd", str(control.fileno())]
        self.proc = start_command(
            ["provider-sim", *fds, *options],
            port=control_port,
            log_name="sim",
            sockets=[send, control],
        )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{control_port}", timeout=10)

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/_sim/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def accepted(self) -> list[list[Any]]:
        response = await self.http.get("/_sim/accepted")
        response.raise_for_status()
        result: list[list[Any]] = response.json()
        return result

    async def requests(self) -> list[list[Any]]:
        """``[msgId, arrived_at, outcome, accepted]`` per send request, in arrival order."""
        response = await self.http.get("/_sim/requests")
        response.raise_for_status()
        result: list[list[Any]] = response.json()
        return result

    async def faults(self, **faults: Any) -> None:
        response = await self.http.post("/_sim/faults", json=faults)
        response.raise_for_status()

    async def close(self) -> None:
        await self.http.aclose()
        stop_process(self.proc)


# Workers a test started and has not stopped: a test that fails half-way
# must not leave one sending the next test's messages (``stop_workers``).
_running: list[Worker] = []


def stop_workers() -> None:
    """Stop every worker still running; the ``db`` fixture calls it after each test."""
    for worker in list(_running):
        worker.stop()


class Worker:
    """A ``mailings worker`` process pointed at a simulator."""

    def __init__(self, sim: Simulator, *args: str, **env: str) -> None:
        # Its /healthz, /readyz and /metrics, on a socket bound here.
        metrics = bound_socket()
        self.metrics_url = f"http://127.0.0.1:{port_of(metrics)}"
        self.proc = start_command(
            ["worker", "--metrics-fd", str(metrics.fileno()), *args],
            env={**FAST_ENGINE_ENV, "PROVIDER_URL": sim.url, **env},
            log_name="worker",
            sockets=[metrics],
        )
        _running.append(self)
        # As long as servers get (conftest): a loaded machine starts Python slowly.
        deadline = time.monotonic() + 180
        while "engine started" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                # Not left running to load the machine further.
                self.stop()
                raise RuntimeError(f"the worker did not start:\n{self.log()}")
            time.sleep(0.05)

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as ``{'name{labels}': value}``."""
        return metric_values(httpx.get(f"{self.metrics_url}/metrics", timeout=10).text)

    async def metrics_once_sent(self, sent: int, timeout: float = 30) -> dict[str, float]:
        """``/metrics`` once it counts ``sent`` messages sent: the worker hands
        its counts to prometheus-client about once a second, not at each request."""
        values: dict[str, float] = {}

        async def counted() -> bool:
            nonlocal values
            values = self.metrics()
            return values.get('mailings_send_requests_total{outcome="sent"}') == sent

        await wait_until(counted, timeout=timeout)
        return values

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._forget()

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)
        self._forget()

    def _forget(self) -> None:
        if self in _running:
            _running.remove(self)

    def log(self) -> str:
        path: Path = self.proc.log_path  # type: ignore[attr-defined]
        return path.read_text(encoding="utf-8", errors="replace")


def metric_values(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{labels}': value}``, as it reads."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def add_clients(n: int, *, tag: str = "", timezone: str = "UTC", first: int = 0) -> None:
    """``n`` clients with phones from ``BULK_PHONES + first``, inserted in bulk.

    ``BULK_PHONES`` is this helper's own range (``tests/support/factories.py``).
    """
    now = utcnow()
    await execute_many(
        connection(),
        "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [[str(BULK_PHONES + first + i), "900", tag, timezone, now, now] for i in range(n)],
    )


async def start_mailing(**fields: Any) -> Mailing:
    """A mailing created as the API creates one, and the engine woken for it."""
    fields.setdefault("start_at", utcnow())
    mailing = await make_mailing(**fields)
    await hooks.tend_mailing(mailing.id, mailing.start_at)
    return mailing


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def wait_for_status(mailing_id: int, *statuses: MailingStatus, timeout: float = 30) -> None:
    async def reached() -> bool:
        mailing = await Mailing.get(id=mailing_id)
        return mailing.status in statuses

    await wait_until(reached, timeout)


async def stats_of(mailing_id: int) -> dict[str, int]:
    stats = await MailingStats.get(mailing_id=mailing_id)
    return {
        k: int(getattr(stats, k))
        for k in ("total", "pending", "sent", "failed", "expired", "cancelled")
    }


def in_seconds(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)
