"""The API and the engine in the test's own process, under a clock the test moves.

The API is the real Starlette application over httpx's ``ASGITransport``;
the engine is the real :class:`tasks.engine.Engine`, driven step by step
(:meth:`EngineDriver.step`) against a real simulator on loopback. Both read
the time from one :class:`FakeClock` (``models.clock.use_clock``), so rules
about starts, ends, windows and backoff are tested in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from models import clock
from settings import Settings, get_settings
from tasks.breaker import CircuitBreaker
from tasks.engine import Engine
from tasks.pacing import SendPacer
from tasks.provider import ProviderClient, make_provider_client

__all__ = ["ApiClient", "EngineDriver", "FakeClock", "api_client", "engine_driver", "fake_clock"]


class FakeClock:
    """A clock that moves only when told; ``monotonic`` follows it."""

    def __init__(self, start: datetime | None = None) -> None:
        # Whole seconds: instants stored on SQLite compare as text.
        self.now = (start or datetime.now(UTC)).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@contextlib.contextmanager
def fake_clock(start: datetime | None = None) -> Iterator[FakeClock]:
    """The service's clock, moved by the test, for the block's duration."""
    fake = FakeClock(start)
    with clock.use_clock(fake):
        yield fake


class ApiClient:
    """GraphQL over the in-process application; ``execute`` fails on ``errors``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}})

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


@contextlib.asynccontextmanager
async def api_client() -> AsyncIterator[ApiClient]:
    """The real application, in this process, on the test's database (no lifespan: it is open)."""
    from graphql_api.app import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield ApiClient(http)


class EngineDriver:
    """An engine driven one step at a time; its requests go to a real server."""

    def __init__(self, engine: Engine, provider: ProviderClient, clock: FakeClock) -> None:
        self.engine = engine
        self.provider = provider
        self.clock = clock

    async def step(self, *, settle: float = 5.0) -> None:
        """Sweep, claim and send what is due now, wait for the answers, record them, sweep."""
        engine = self.engine
        await engine.sweep_once()
        engine.wake()
        for _ in range(1000):
            if await engine.dispatch_once(wait=False) <= 0:
                break
        if engine.in_flight:
            await asyncio.wait(set(engine.in_flight), timeout=settle)
        await engine.record_now()
        await engine.sweep_once()
        await engine.record_now()

    async def run_until(self, done: Any, *, steps: int = 50, tick: float = 0.5) -> None:
        """Step until ``await done()`` holds, the clock moving ``tick`` seconds between steps."""
        for _ in range(steps):
            await self.step()
            if await done():
                return
            self.clock.advance(seconds=tick)
        raise AssertionError(f"not done after {steps} steps")

    async def aclose(self) -> None:
        await self.engine.drain(grace=5.0)
        await self.engine.record_now()
        await self.provider.aclose()


@contextlib.asynccontextmanager
async def engine_driver(
    provider_url: str, fake: FakeClock, **overrides: Any
) -> AsyncIterator[EngineDriver]:
    """An engine on this loop, sending to ``provider_url``, reading ``fake`` for the time."""
    settings = Settings(
        **{
            **get_settings().model_dump(),
            "provider_url": provider_url,
            "send_timeout": 2.0,
            "send_connect_timeout": 1.0,
            "retry_base_delay": 1.0,
            "retry_max_delay": 60.0,
            "breaker_failure_threshold": 5,
            "breaker_reset_timeout": 5.0,
            **overrides,
        }
    )
    provider = make_provider_client(settings)
    breaker = CircuitBreaker.from_settings(settings, clock=fake.monotonic)
    engine = Engine(
        settings,
        provider,
        breaker,
        clock=fake,
        pacer=SendPacer(clock=fake.monotonic),
        monotonic=fake.monotonic,
    )
    driver = EngineDriver(engine, provider, fake)
    try:
        yield driver
    finally:
        await driver.aclose()
