"""The API and the engine in the test's own process, under a clock the test moves.

The API is the real Starlette application over httpx's ``ASGITransport``,
its lifespan run, with the test settings or others (``serving(api_token=...)``);
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
import pytest
from starlette.applications import Starlette

from models import clock
from settings import Settings, get_settings
from tasks.breaker import CircuitBreaker
from tasks.engine import Engine
from tasks.pacing import SendPacer
from tasks.provider import ProviderClient, make_provider_client
from tests.conftest import GraphQLClient

__all__ = [
    "BASE_URL",
    "EngineDriver",
    "FakeClock",
    "api_client",
    "engine_driver",
    "fake_clock",
    "graphql_client",
    "http_client",
    "new_engine_driver",
    "serving",
    "settings_with",
]

# Where the application in process answers; any host reaches it through the transport.
BASE_URL = "http://api.test"


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


# 09:00 UTC on a fixed day, so send windows are predictable.
NINE = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(name="clock")
def clock_at_nine() -> Iterator[FakeClock]:
    """The service's clock at ``NINE``, moved by the test (a module imports it to use it)."""
    with fake_clock(NINE) as fake:
        yield fake


def settings_with(**overrides: Any) -> Settings:
    """The test settings with ``overrides`` (field names of :class:`settings.Settings`)."""
    if not overrides:
        return get_settings()
    return Settings(**{**get_settings().model_dump(), **overrides})


@contextlib.asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[Starlette]:
    """The real application, made with ``settings_with(**overrides)``, its lifespan running.

    The lifespan leaves the test's database connections alone: they are open already.
    """
    from graphql_api.app import create_app

    app = create_app(settings_with(**overrides))
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def without_lifespan(**overrides: Any) -> AsyncIterator[Starlette]:
    """The real application with its lifespan not run (no database needed).

    What the lifespan would have closed and a request may open is closed
    here: the rate limits' Redis connections, which the garbage collector
    would otherwise find unclosed during a later test.
    """
    from graphql_api.app import create_app

    app = create_app(settings_with(**overrides))
    try:
        yield app
    finally:
        await app.state.rate_limits.aclose()


def http_client(app: Starlette, **options: Any) -> httpx.AsyncClient:
    """An HTTP client of ``app`` in this process (``options``: httpx's, such as ``headers``)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=60, **options
    )


def graphql_client(app: Starlette, token: str | None = None) -> GraphQLClient:
    """GraphQL over ``app`` in this process, sending ``token`` as a bearer if given."""
    return GraphQLClient(BASE_URL, token, transport=httpx.ASGITransport(app=app))


@contextlib.asynccontextmanager
async def api_client(token: str | None = None, **overrides: Any) -> AsyncIterator[GraphQLClient]:
    """GraphQL over an application of its own, made with ``overrides`` of the settings."""
    async with serving(**overrides) as app, graphql_client(app, token) as client:
        yield client


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

    async def crash(self) -> None:
        """Die as a killed worker does: nothing more is written, its leases are left to end.

        Its requests in flight are cut off (the provider may have taken them)
        and the outcomes it held unwritten are lost with it.
        """
        in_flight = set(self.engine.in_flight)
        for task in in_flight:
            task.cancel()
        # A cancelled send hands its message back to this engine's recorder,
        # which nobody reads again.
        await asyncio.gather(*in_flight, return_exceptions=True)
        await self.provider.aclose()


def new_engine_driver(provider_url: str, fake: FakeClock, **overrides: Any) -> EngineDriver:
    """An engine on this loop, sending to ``provider_url``, reading ``fake`` for the time.

    The caller ends it: :meth:`EngineDriver.aclose` (or :meth:`EngineDriver.crash`).
    """
    settings = settings_with(
        **{
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
    return EngineDriver(engine, provider, fake)


@contextlib.asynccontextmanager
async def engine_driver(
    provider_url: str, fake: FakeClock, **overrides: Any
) -> AsyncIterator[EngineDriver]:
    """An engine on this loop, sending to ``provider_url``, reading ``fake`` for the time."""
    driver = new_engine_driver(provider_url, fake, **overrides)
    try:
        yield driver
    finally:
        await driver.aclose()
