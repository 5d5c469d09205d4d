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
from tests.conftest import free_port, start_command, stop_process
from tests.support.factories import make_mailing

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
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Introspection goes to a control port that stays up through outages.
        control = free_port()
        self.proc = start_command(
            ["provider-sim", "--port", str(self.port), "--control-port", str(control), *options],
            port=control,
            log_name="sim",
        )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{control}", timeout=10)

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


class Worker:
    """A ``mailings worker`` process pointed at a simulator."""

    def __init__(self, sim: Simulator, *args: str, **env: str) -> None:
        self.proc = start_command(
            ["worker", *args],
            env={**FAST_ENGINE_ENV, "PROVIDER_URL": sim.url, **env},
            log_name="worker",
        )
        deadline = time.monotonic() + 30
        while "engine started" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)

    def log(self) -> str:
        path: Path = self.proc.log_path  # type: ignore[attr-defined]
        return path.read_text(encoding="utf-8", errors="replace")


async def add_clients(n: int, *, tag: str = "", timezone: str = "UTC", first: int = 0) -> None:
    """``n`` clients with phones from ``79000000000 + first``, inserted in bulk."""
    now = utcnow()
    await execute_many(
        connection(),
        "INSERT INTO client (phone, operator_code, tag, timezone, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [[str(79_000_000_000 + first + i), "900", tag, timezone, now, now] for i in range(n)],
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


async def set_status(mailing_id: int, status: MailingStatus) -> None:
    await Mailing.filter(id=mailing_id).update(status=status, updated_at=utcnow())


def in_seconds(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)
