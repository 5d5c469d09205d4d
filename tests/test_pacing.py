"""Pacing of requests to the send API (SPEC section 3: 429s and ``PROVIDER_MAX_RPS``).

The adaptive limit runs on a fake clock. The shared cap runs on the real
stores, Redis and this run's database (PostgreSQL or SQLite), with several
pacers on connections of their own, as several workers would be, each with
its own skewed clock. The GCRA arithmetic is checked by Hypothesis, and the
stores are checked to compute exactly what it computes.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import subprocess
import time
import uuid
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from itertools import chain, pairwise
from pathlib import Path

import pytest
import structlog.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from redis.asyncio import Redis
from tortoise import BaseDBAsyncClient

from models.db import tortoise_config
from models.tortoise_config import connection_info
from settings import Settings
from tasks import adaptive_rate, pacing
from tasks.adaptive_rate import AdaptiveRateLimit, Grant
from tasks.pacing import SendPacer
from tasks.retry import MAX_RETRY_AFTER
from tasks.send_schedule import (
    DatabaseSchedule,
    RedisSchedule,
    Reservation,
    Schedule,
    SharedCap,
    reserve_slots,
)
from tests.conftest import DATA_DIR, REDIS_BASE_URL, REDIS_URL, RUN_ID, bound_socket, port_of

STORES = [
    pytest.param(
        "redis",
        marks=pytest.mark.skipif(REDIS_URL is None, reason="Redis runs with the PostgreSQL suite"),
    ),
    "database",
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def busiest_second(starts: list[float]) -> int:
    """The most start times in any window ``[t, t + 1)``; ``starts`` sorted."""
    return max((bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts)), default=0)


# -- the adaptive limit, on a fake clock ---------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limit(clock: FakeClock) -> AdaptiveRateLimit:
    return AdaptiveRateLimit(clock=clock)


def _answer_at(limit: AdaptiveRateLimit, clock: FakeClock, rate: float, seconds: float) -> None:
    """Answers at ``rate`` a second for ``seconds``, as a busy worker gets them."""
    for _ in range(round(rate * seconds)):
        clock.advance(1 / rate)
        limit.answered()


def test_without_429_everything_may_start_now(limit: AdaptiveRateLimit, clock: FakeClock) -> None:
    _answer_at(limit, clock, 1000, 3)
    grant = limit.grant(500, 0.5)
    assert grant == Grant(500, clock.now, 0.0, clock.now)
    assert limit.limit is None


def test_a_429_sets_the_limit_a_little_under_the_answers_of_the_last_second(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    _answer_at(limit, clock, 200, 2.5)
    assert limit.achieved_rate() == pytest.approx(200, rel=0.02)
    limit.rate_limited(None)
    assert limit.limit == pytest.approx(0.95 * 200, rel=0.02)
    assert limit.blocked_until < clock.now  # no Retry-After: slower, not stopped
    grant = limit.grant(1000, 0.5)
    assert grant.interval == pytest.approx(1 / 190, rel=0.02)
    assert grant.count == math.floor(0.5 / grant.interval) + 1
    assert grant.first_at == clock.now
    # The next grant starts where this one ended: the rate holds across calls.
    following = limit.grant(1000, 0.5)
    assert following.count == 0
    assert following.retry_at == pytest.approx(grant.start_at(grant.count) - 0.5)
    clock.advance(0.25)
    following = limit.grant(1000, 0.5)
    assert following.first_at == pytest.approx(grant.start_at(grant.count))


def test_a_burst_is_measured_by_what_the_provider_let_through_not_by_its_speed(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    # A worker starting at 3,000/s against a provider that lets 300 through a
    # second: its window is full after a tenth of a second.
    clock.advance(5.0)
    _answer_at(limit, clock, 3000, 0.1)
    limit.rate_limited(1.0)
    assert limit.limit == pytest.approx(0.95 * 300, rel=0.01)


def test_a_fixed_window_burst_across_its_edge_is_corrected_by_the_next_round(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    # 300 a whole second: a burst across the edge got 150 + 300 through.
    clock.advance(5.0)
    _answer_at(limit, clock, 3000, 0.15)
    limit.rate_limited(1.0)
    first = limit.limit
    assert first == pytest.approx(0.95 * 450, rel=0.01)
    # After the Retry-After, at that limit, the next window is full again after
    # 300: the last second holds those 300 only, and the limit comes under them.
    clock.advance(1.0)
    _answer_at(limit, clock, first, 300 / first)
    limit.rate_limited(1.0)
    assert limit.limit == pytest.approx(0.95 * 300, rel=0.01)


def test_retry_after_holds_every_message(limit: AdaptiveRateLimit, clock: FakeClock) -> None:
    _answer_at(limit, clock, 100, 2)
    limit.rate_limited(3.0)
    assert limit.blocked_until == clock.now + 3.0
    for n in (1, 10, 500):
        assert limit.grant(n, 0.5) == Grant(0, clock.now + 3.0, 0.0, clock.now + 3.0)
        assert limit.admit(n, 0.001) == (0, clock.now + 3.0)
    clock.advance(2.99)
    assert limit.grant(1, 0.5).count == 0
    clock.advance(0.01)
    grant = limit.grant(1, 0.5)
    assert grant.count == 1
    assert grant.first_at >= limit.blocked_until


def test_retry_after_extends_never_shortens_and_is_bounded(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    limit.rate_limited(10.0)
    limit.rate_limited(2.0)
    assert limit.blocked_until == clock.now + 10.0
    limit.rate_limited(0.0)
    limit.rate_limited(-5.0)
    limit.rate_limited(math.nan)
    assert limit.blocked_until == clock.now + 10.0
    limit.rate_limited(1e12)
    assert limit.blocked_until == clock.now + MAX_RETRY_AFTER


def test_a_round_of_429s_cuts_once(limit: AdaptiveRateLimit, clock: FakeClock) -> None:
    _answer_at(limit, clock, 300, 2)
    limit.rate_limited(None)
    first_cut = limit.limit
    assert first_cut is not None
    # Every request in flight at the old rate comes back 429 as well.
    for _ in range(100):
        clock.advance(0.001)
        limit.rate_limited(None)
    # Not cut again: it has even begun to grow back.
    assert limit.limit is not None
    assert limit.limit >= first_cut
    _answer_at(limit, clock, first_cut, 1.0)  # past the guard: this one answers the new rate
    before = limit.limit
    assert before is not None
    limit.rate_limited(None)
    assert limit.limit is not None
    assert limit.limit <= 0.98 * before


def test_429s_of_requests_started_before_the_cut_do_not_cut_again(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    _answer_at(limit, clock, 300, 2)
    limit.rate_limited(None)
    cut_at = clock.now
    first_cut = limit.limit
    assert first_cut is not None
    _answer_at(limit, clock, first_cut, 5.0)  # a slow provider: long past the guard
    limit.rate_limited(None, started_at=cut_at - 0.5)
    before = limit.limit
    assert before is not None
    assert before >= first_cut
    limit.rate_limited(None, started_at=cut_at + 0.5)
    assert limit.limit is not None
    assert limit.limit <= 0.98 * before


def test_the_limit_never_drops_below_min_rate(clock: FakeClock) -> None:
    limit = AdaptiveRateLimit(min_rate=2.0, clock=clock)
    for _ in range(30):
        limit.rate_limited(None)
        assert limit.limit is not None
        assert limit.limit >= 2.0
        clock.advance(1.5)


def test_the_limit_holds_under_the_ceiling_then_probes_beyond_it(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    """Climbing back to the ceiling, as CUBIC does, ran into a sliding window every few
    seconds: each round cost a Retry-After of nothing sent."""
    # Keep the worker busy at whatever the limit allows, so it stays on.
    _answer_at(limit, clock, 1000, 2)
    limit.rate_limited(None)
    cut_at = clock.now
    seen = []
    for _ in range(40):
        current = limit.limit
        assert current is not None
        seen.append((clock.now - cut_at, current))
        _answer_at(limit, clock, current, 0.5)
    k = (950 * 0.3 / 0.4) ** (1 / 3)  # CUBIC's K: the hold, before probing
    assert [value for _, value in seen] == sorted(value for _, value in seen)
    held = [value for since, value in seen if since <= k]
    assert held == [pytest.approx(950, rel=0.01)] * len(held)
    assert seen[-1][1] > 1000  # and then it probes beyond the ceiling


def test_429s_of_slots_granted_before_the_cut_do_not_cut_again(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    """Slots granted half a second ahead started after a cut, and each of their 429s cut
    again: 291/s became 138/s in a tenth of a second."""
    _answer_at(limit, clock, 300, 2)
    limit.rate_limited(None)
    first = limit.limit
    assert first is not None
    _answer_at(limit, clock, first, 2.0)
    granted = limit.grant(1000, 0.5)
    last_slot = granted.start_at(granted.count - 1)
    assert last_slot > clock.now + 0.4
    limit.rate_limited(None, started_at=clock.now)  # a new round: it cuts
    second = limit.limit
    assert second is not None
    assert second < first
    # A slow provider answers the slots granted before that cut long after it.
    _answer_at(limit, clock, second, 2.0)
    limit.rate_limited(None, started_at=last_slot)
    assert limit.limit == pytest.approx(second)
    limit.rate_limited(None, started_at=last_slot + 0.1)  # granted after the cut
    assert limit.limit is not None
    assert limit.limit < second


def test_the_first_429_of_a_round_is_measured_again_by_the_next(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    """A burst's first 429 came back before a sixth of the answers the provider had let
    through, and the limit stayed a sixth too low."""
    clock.advance(5.0)
    _answer_at(limit, clock, 3000, 250 / 3000)
    limit.rate_limited(1.0, started_at=clock.now - 0.01)
    assert limit.limit == pytest.approx(0.95 * 250, rel=0.01)
    _answer_at(limit, clock, 3000, 50 / 3000)  # the rest of the window's answers
    limit.rate_limited(1.0, started_at=clock.now - 0.05)
    assert limit.limit == pytest.approx(0.95 * 300, rel=0.01)
    # Later 429s of the round (answers thin out during the Retry-After) never lower it.
    clock.advance(0.5)
    limit.rate_limited(1.0, started_at=clock.now - 0.6)
    assert limit.limit == pytest.approx(0.95 * 300, rel=0.01)


def test_a_probe_that_finds_no_more_waits_twice_as_long(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    _answer_at(limit, clock, 300, 2)
    limit.rate_limited(None)
    target = limit.limit
    assert target == pytest.approx(285, rel=0.01)
    k = (target * 0.3 / 0.4) ** (1 / 3)
    # Busy at the provider's 300/s until the probe passes it and gets a 429.
    _answer_at(limit, clock, 300, k + 4.0)
    assert limit.limit is not None
    assert limit.limit > 300
    limit.rate_limited(None, started_at=clock.now)
    cut_at = clock.now
    assert limit.limit == pytest.approx(285, rel=0.01)
    _answer_at(limit, clock, 300, 1.5 * k)
    assert limit.limit == pytest.approx(285, rel=0.01)  # one hold would have ended
    _answer_at(limit, clock, 300, cut_at + 2 * k + 3.0 - clock.now)
    assert limit.limit is not None
    assert limit.limit > 295  # probing again
    # A provider that allows more now: the probe finds it, and holds are short again.
    _answer_at(limit, clock, 400, 2.0)
    limit.rate_limited(None, started_at=clock.now)
    found = limit.limit
    assert found is not None
    assert found > 300
    _answer_at(limit, clock, found, (found * 0.3 / 0.4) ** (1 / 3) + 3.0)
    assert limit.limit is not None
    assert limit.limit > found


def test_the_limit_is_lifted_once_it_no_longer_binds(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    _answer_at(limit, clock, 400, 2)
    limit.rate_limited(None)
    assert limit.limit is not None
    # The mailing is nearly done: a trickle of answers, far below the limit.
    _answer_at(limit, clock, 20, 1.5)
    assert limit.limit is None
    assert limit.grant(300, 0.5) == Grant(300, clock.now, 0.0, clock.now)


def test_the_limit_stays_while_it_binds(limit: AdaptiveRateLimit, clock: FakeClock) -> None:
    _answer_at(limit, clock, 400, 2)
    limit.rate_limited(None)
    for _ in range(20):
        current = limit.limit
        assert current is not None
        _answer_at(limit, clock, current, 0.5)
    assert limit.limit is not None


def test_a_retry_after_pause_is_not_mistaken_for_no_demand(
    limit: AdaptiveRateLimit, clock: FakeClock
) -> None:
    _answer_at(limit, clock, 400, 2)
    limit.rate_limited(8.0)
    clock.advance(8.0)  # nothing was answered: nothing could start
    assert limit.limit is not None
    current = limit.limit
    _answer_at(limit, clock, current, 1.5)
    assert limit.limit is not None


def test_limits_are_logged(
    limit: AdaptiveRateLimit, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured = structlog.testing.CapturingLogger()
    monkeypatch.setattr(adaptive_rate, "log", captured)
    _answer_at(limit, clock, 100, 2)
    limit.rate_limited(2.0)
    limit.rate_limited(2.0)
    for _ in range(5):  # a trickle of answers after the pause
        _answer_at(limit, clock, 1, 1)
        assert limit.limit is not None or captured.calls[-1].args[0].endswith("lifted")
    assert limit.limit is None
    events = [(call.method_name, call.args[0]) for call in captured.calls]
    assert events == [
        ("warning", "provider rate limit: sending slower"),
        ("info", "provider rate limit lifted"),
    ]
    assert captured.calls[0].kwargs["retry_after_s"] == 2.0
    assert captured.calls[0].kwargs["limit_rps"] == pytest.approx(95, rel=0.05)


def test_admit_with_a_cap(limit: AdaptiveRateLimit, clock: FakeClock) -> None:
    assert limit.admit(50, 0.01) == (50, clock.now)
    _answer_at(limit, clock, 130, 2)
    limit.rate_limited(None)
    current = limit.limit
    assert current == pytest.approx(0.95 * 130, rel=0.02)
    # Against a cap slower than the limit, the cap spaces the slots: ask for all.
    assert limit.admit(500, 0.5) == (500, clock.now)
    # Against a cap of 1000/s the limit binds: a tenth of a second of it at once.
    batch = math.floor(0.1 * current)
    assert limit.admit(500, 0.001) == (batch, clock.now)
    limit.consume(batch, clock.now, 0.001)
    count, when = limit.admit(500, 0.001)
    assert count == 0
    # The next batch when its last slot conforms: the rate holds on average.
    assert when == pytest.approx(clock.now + batch / current, rel=1e-6)
    clock.now = when
    assert limit.admit(500, 0.001) == (batch, clock.now)
    # A smaller request is served as soon as it can be.
    limit.consume(batch, clock.now, 0.001)
    count, when = limit.admit(1, 0.001)
    assert count == 0
    assert when == pytest.approx(clock.now + 1 / current, rel=1e-6)


class LimitMachine(RuleBasedStateMachine):
    """Any sequence of answers, 429s, waits and grants keeps the limit's promises."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.limit = AdaptiveRateLimit(clock=self.clock)
        self.last_slot: float | None = None
        self.last_interval = 0.0

    @initialize(rate=st.floats(1, 2000))
    def busy(self, rate: float) -> None:
        _answer_at(self.limit, self.clock, rate, 1.5)

    @rule(seconds=st.floats(0, 5))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(count=st.integers(1, 200), seconds=st.floats(0.01, 1))
    def answers(self, count: int, seconds: float) -> None:
        _answer_at(self.limit, self.clock, count / seconds, seconds)

    @rule(retry_after=st.none() | st.floats(-1, 30))
    def too_many_requests(self, retry_after: float | None) -> None:
        self.limit.rate_limited(retry_after)

    @rule(n=st.integers(1, 1000))
    def grant(self, n: int) -> None:
        now = self.clock.now
        grant = self.limit.grant(n, 0.5)
        assert 0 <= grant.count <= n
        assert grant.retry_at >= now
        if grant.count == 0:
            assert grant.retry_at > now or now < self.limit.blocked_until
            return
        assert grant.first_at >= max(now, self.limit.blocked_until)
        assert grant.start_at(grant.count - 1) <= now + 0.5 + 1e-9
        if grant.interval == 0:
            assert self.limit.limit is None
            self.last_slot = None
            return
        if self.last_slot is not None:
            # Slots of consecutive grants never overlap while the limit is on.
            assert grant.first_at >= self.last_slot + self.last_interval - 1e-9
        self.last_slot = grant.start_at(grant.count - 1)
        self.last_interval = grant.interval

    @invariant()
    def limit_is_above_the_floor(self) -> None:
        current = self.limit.limit
        assert current is None or current >= self.limit.min_rate
        if current is None:
            self.last_slot = None

    @precondition(lambda self: self.limit.limit is not None)
    @rule()
    def limited_grants_honour_the_limit(self) -> None:
        current = self.limit.limit
        assert current is not None
        grant = self.limit.grant(10_000, 0.5)
        if grant.count > 1:
            assert grant.interval == pytest.approx(1 / current)


TestLimitMachine = LimitMachine.TestCase
TestLimitMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# -- the GCRA arithmetic ---------------------------------------------------------

rates = st.floats(0.5, 10_000)
horizons = st.floats(0, 2)
# Steps of the store's clock (backwards too: clocks get stepped) and sizes of requests.
steps = st.lists(st.tuples(st.floats(-0.5, 2), st.integers(0, 300)), min_size=1, max_size=25)
epochs = st.floats(1.7e9, 1.9e9)


@given(rate=rates, horizon=horizons, steps=steps, epoch=epochs)
def test_gcra_grants_never_overlap_and_never_exceed_the_rate(
    rate: float, horizon: float, steps: list[tuple[float, int]], epoch: float
) -> None:
    interval = 1 / rate
    eps = 8 * math.ulp(epoch * 2)  # what float arithmetic at this magnitude may be off by
    tat, now = 0.0, epoch
    starts: list[float] = []
    for dt, n in steps:
        now += dt
        got = reserve_slots(tat, now, interval, horizon, n)
        assert 0 <= got.count <= n
        assert got.first >= now
        assert got.first >= tat
        if got.count:
            assert got.first + (got.count - 1) * interval <= now + horizon + eps
        if got.count < n:  # nothing left within the horizon
            assert got.tat > now + horizon - eps
        assert got.tat == got.first + got.count * interval
        new = [got.first + i * interval for i in range(got.count)]
        if starts and new:
            assert new[0] >= starts[-1] + interval - eps
        starts.extend(new)
        tat = got.tat
    assert busiest_second(starts) <= rate + 1 + 2 * eps * rate


async def _redis_schedule() -> RedisSchedule:
    return RedisSchedule(REDIS_BASE_URL, f"mailings-test:{RUN_ID}:schedule:{uuid.uuid4().hex}")


async def _drop(schedule: Schedule) -> None:
    if isinstance(schedule, RedisSchedule):
        redis = Redis.from_url(REDIS_BASE_URL)
        await redis.delete(schedule.key)
        await redis.aclose()
    await schedule.aclose()


@pytest.mark.parametrize("store", STORES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rate=rates, horizon=horizons, steps=steps, epoch=epochs)
async def test_the_stores_compute_what_the_model_computes(
    database: str,
    store: str,
    rate: float,
    horizon: float,
    steps: list[tuple[float, int]],
    epoch: float,
) -> None:
    schedule: Schedule = (
        await _redis_schedule() if store == "redis" else DatabaseSchedule(uuid.uuid4().hex)
    )
    try:
        interval = 1 / rate
        tat, now = 0.0, epoch
        for dt, n in steps:
            now += dt
            expected = reserve_slots(tat, now, interval, horizon, n)
            assert await schedule.reserve(n, interval, horizon, now=now) == expected
            tat = expected.tat
    finally:
        await _drop(schedule)


# -- the shared cap on the real stores -----------------------------------------


async def _own_db_client(alias: str) -> BaseDBAsyncClient:
    """A database connection of its own, as another worker process has."""
    info = tortoise_config()["connections"]["default"]
    client_class = importlib.import_module(info["engine"]).client_class
    client: BaseDBAsyncClient = client_class(connection_name=alias, **info["credentials"])
    await client.create_connection(with_db=True)
    return client


class Recording:
    """A schedule that keeps every reservation the store made, in the store's clock."""

    def __init__(self, inner: Schedule) -> None:
        self.inner = inner
        self.made: list[Reservation] = []

    @property
    def clock_resolution(self) -> float:
        return self.inner.clock_resolution

    async def reserve(
        self, n: int, interval: float, horizon: float, *, now: float | None = None
    ) -> Reservation:
        got = await self.inner.reserve(n, interval, horizon, now=now)
        self.made.append(got)
        return got

    async def aclose(self) -> None:
        await self.inner.aclose()


MakeSchedules = Callable[[int], Awaitable[list[Recording]]]


@pytest.fixture
async def schedules(request: pytest.FixtureRequest, db: str) -> AsyncIterator[MakeSchedules]:
    """``make(k)``: k handles on one new schedule, each on its own connection."""
    store: str = request.param
    async with AsyncExitStack() as stack:

        async def make(k: int) -> list[Recording]:
            name = uuid.uuid4().hex
            made: list[Recording] = []
            for i in range(k):
                if store == "redis":
                    key = f"mailings-test:{RUN_ID}:schedule:{name}"
                    inner: Schedule = RedisSchedule(REDIS_BASE_URL, key)
                else:
                    client = await _own_db_client(f"pacer-{name}-{i}")
                    stack.push_async_callback(client.close)
                    inner = DatabaseSchedule(name, client)
                stack.push_async_callback(_drop, inner)
                made.append(Recording(inner))
            return made

        yield make


def _skewed(skew: float) -> Callable[[], float]:
    return lambda: time.monotonic() + skew


def _wall_minus_monotonic() -> float:
    """Moves only when this machine's wall clock is set or slewed (the stores stamp with it)."""
    return time.time() - time.monotonic()


async def _ask_as_fast_as_allowed(
    cap: SharedCap, skew: float, until: float
) -> tuple[list[float], float]:
    """Reserve slots until ``until`` (unskewed): their start times, unskewed, and
    the most they may have been mapped late by."""
    starts: list[float] = []
    late = 0.0
    while time.monotonic() < until:
        got = await cap.reserve(20)
        late = max(late, cap.clock_error)
        starts.extend(got.first - skew + i * cap.interval for i in range(got.count))
        wait = got.tat - cap.horizon - (time.monotonic() + skew)
        await asyncio.sleep(max(wait, 0.002))
    return starts, late


@pytest.mark.parametrize("schedules", STORES, indirect=True)
@pytest.mark.parametrize("workers", [2, 4])
async def test_workers_together_never_exceed_the_cap(
    schedules: MakeSchedules, workers: int
) -> None:
    rate = 200.0
    # Clocks hours apart, as unrelated machines' monotonic clocks are.
    skews = [0.0, 3600.25, -86_400.75, 12.5][:workers]
    handles = await schedules(workers)
    caps = [
        SharedCap(handle, rate, horizon=0.5, clock=_skewed(skew))
        for handle, skew in zip(handles, skews, strict=True)
    ]
    wall_before = _wall_minus_monotonic()
    until = time.monotonic() + 2.6
    asked = await asyncio.gather(
        *(_ask_as_fast_as_allowed(cap, skew, until) for cap, skew in zip(caps, skews, strict=True))
    )
    wall_moved = abs(_wall_minus_monotonic() - wall_before)
    assert all(starts for starts, _ in asked), "every worker got slots"

    # In the store's clock: grants are disjoint, their slots 1/R apart whoever
    # made them, so any sliding second holds at most R + 1.
    made = sorted((r for h in handles for r in h.made if r.count), key=lambda r: r.first)
    for before, after in pairwise(made):
        assert after.first >= before.tat - 1e-6, (before, after)
    in_store = sorted(r.first + i * caps[0].interval for r in made for i in range(r.count))
    assert busiest_second(in_store) <= rate + 1

    # In the workers' clocks, whatever their skew: the same, but for how late
    # each worker may map a slot (the round trips it measured its clock by),
    # and for how far the wall clock the stores stamp with moved against the
    # workers' monotonic clocks meanwhile, which no worker can see. It stays
    # put unless the machine's clock is set or slewed: once, on a VM whose
    # kernel had logged "crng reseeded due to virtual machine fork" 90 s
    # before, three runs in a row saw 202 starts in a second, not 201, on
    # both stores; the movement is in the message should it happen again.
    starts = sorted(chain.from_iterable(starts for starts, _ in asked))
    late = max(late for _, late in asked)
    # The error is a database round trip (a millisecond idle); 50 ms was seen
    # with the suite's xdist workers on two cores (58 ms once). The bound
    # below is taken with the error measured, so it is as tight as the machine.
    assert late < 0.1, late
    assert wall_moved < 0.05, wall_moved
    busiest = busiest_second(starts)
    assert busiest <= math.floor(rate * (1 + late + wall_moved)) + 1, (late, wall_moved)
    # And the workers together use what the cap allows (within a few %) while
    # they ask: a test process that nobody ran for longer than the horizon
    # (a busy machine) leaves those slots unbooked, as it should.
    begin = in_store[0]
    asked_at = sorted(r.now for h in handles for r in h.made if begin <= r.now < begin + 2.0)
    unasked = sum(max(0.0, b - a - 0.5) for a, b in pairwise([begin, *asked_at, begin + 2.0]))
    covered = bisect_left(in_store, begin + 2.0)
    assert covered >= 0.97 * rate * (2.0 - unasked), (covered, unasked)


@pytest.mark.parametrize("schedules", STORES, indirect=True)
async def test_a_clock_step_is_followed(schedules: MakeSchedules) -> None:
    (handle,) = await schedules(1)
    skew = [0.0]
    cap = SharedCap(handle, 1000.0, horizon=0.5, clock=lambda: time.monotonic() + skew[0])
    got = await cap.reserve(1)
    assert got.now == pytest.approx(time.monotonic(), abs=0.05)
    for step in (30.0, -60.0):
        skew[0] += step
        got = await cap.reserve(1)
        assert got.now == pytest.approx(time.monotonic() + skew[0], abs=0.05)
        assert got.first >= got.now - 0.05


@pytest.mark.parametrize("schedules", STORES, indirect=True)
async def test_retry_after_holds_the_capped_pacer(schedules: MakeSchedules) -> None:
    (handle,) = await schedules(1)
    pacer = SendPacer(SharedCap(handle, 1000.0))
    grant = await pacer.reserve(10)
    assert grant.count == 10
    pacer.rate_limited(0.3)
    held = await pacer.reserve(10)
    assert held.count == 0
    assert held.retry_at == pacer.blocked_until
    await asyncio.sleep(max(0.0, held.retry_at - time.monotonic()))
    grant = await pacer.reserve(10)
    assert grant.count > 0
    assert grant.first_at >= pacer.blocked_until


@pytest.mark.parametrize("schedules", STORES, indirect=True)
async def test_the_tighter_limit_wins(schedules: MakeSchedules) -> None:
    (handle,) = await schedules(1)
    # A 429 that sets the worker's own limit to its floor, 50/s, well under the cap of 1000/s;
    # a long window keeps it from being lifted while the test runs.
    limit = AdaptiveRateLimit(min_rate=50.0, window=10.0)
    pacer = SendPacer(SharedCap(handle, 1000.0), limit=limit)
    pacer.rate_limited(None)
    assert pacer.limit == pytest.approx(50.0)
    starts: list[float] = []
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        grant = await pacer.reserve(100)
        starts.extend(grant.start_at(i) for i in range(grant.count))
        assert grant.interval in (0.0, pytest.approx(0.001))
        await asyncio.sleep(max(grant.retry_at - time.monotonic(), 0.002))
    # 50/s, give or take the tenth of a second that may be asked of the cap at once.
    assert busiest_second(sorted(starts)) <= 50 + 0.1 * 50 + 1
    assert len(starts) >= 0.5 * 50


def _redis_server(path: Path) -> subprocess.Popen[bytes]:
    """A redis-server on a Unix socket of this run's own: no port to be taken meanwhile."""
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(path), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.call(["redis-cli", "-s", str(path), "ping"], stdout=subprocess.DEVNULL):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return proc


async def test_a_failing_store_holds_sending_and_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captured = structlog.testing.CapturingLogger()
    monkeypatch.setattr(pacing, "log", captured)
    path = DATA_DIR / f"redis-{uuid.uuid4().hex[:8]}.sock"
    pacer = SendPacer(SharedCap(RedisSchedule(f"unix://{path}", "schedule"), 100.0))
    try:
        before = time.monotonic()
        grant = await pacer.reserve(5)
        assert grant.count == 0
        assert before + 1.0 <= grant.retry_at <= time.monotonic() + 1.0
        assert (await pacer.reserve(5)).count == 0
        assert [call.args[0] for call in captured.calls] == [
            "send schedule unavailable; sending holds"
        ]
        assert "ConnectionError" in captured.calls[0].kwargs["error"]
        server = _redis_server(path)
        try:
            grant = await pacer.reserve(5)
            assert grant.count == 5
        finally:
            server.terminate()
            server.wait(10)
        assert captured.calls[-1].args[0] == "send schedule answers again"
    finally:
        await pacer.aclose()


async def test_a_failing_database_holds_sending(database: str, backend: str) -> None:
    # Held, not listening: connections are refused, and nothing else can listen there.
    with bound_socket() as nothing_listens:
        if backend == "postgres":
            url = f"postgres://postgres@127.0.0.1:{port_of(nothing_listens)}/nowhere"
        else:
            url = f"sqlite:///nonexistent-{uuid.uuid4().hex}/mailings.sqlite3"
        info = connection_info(url)
        client_class = importlib.import_module(info["engine"]).client_class
        client: BaseDBAsyncClient = client_class(connection_name="gone", **info["credentials"])
        pacer = SendPacer(SharedCap(DatabaseSchedule("gone", client), 100.0))
        grant = await pacer.reserve(5)
        assert grant.count == 0
        assert grant.retry_at > time.monotonic() + 0.5
        await client.close()


# -- the facade -----------------------------------------------------------------


async def test_without_cap_or_429_reserve_is_one_grant_for_all(clock: FakeClock) -> None:
    pacer = SendPacer(clock=clock)
    assert pacer.max_rps is None
    assert pacer.limit is None
    for _ in range(3):
        pacer.accepted()
    assert await pacer.reserve(256) == Grant(256, clock.now, 0.0, clock.now)


async def test_reserve_refuses_nonsense(clock: FakeClock) -> None:
    pacer = SendPacer(clock=clock)
    with pytest.raises(ValueError, match="at least one"):
        await pacer.reserve(0)
    with pytest.raises(ValueError, match="min_rate"):
        AdaptiveRateLimit(min_rate=0)
    with pytest.raises(ValueError, match="max_rps"):
        SharedCap(DatabaseSchedule("x"), math.nan)


async def test_uncapped_pacer_slows_down_on_429(clock: FakeClock) -> None:
    pacer = SendPacer(limit=AdaptiveRateLimit(clock=clock), clock=clock)
    for _ in range(200):
        clock.advance(0.005)
        pacer.accepted()
    clock.advance(0.5)
    pacer.rate_limited(1.0)
    assert (await pacer.reserve(50)).count == 0
    clock.advance(1.0)
    grant = await pacer.reserve(500)
    assert 0 < grant.count < 500
    assert grant.interval == pytest.approx(1 / pacer.limit)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("redis_url", "kind"),
    [("redis://127.0.0.1:6379/0", RedisSchedule), (None, DatabaseSchedule)],
)
async def test_from_settings(redis_url: str | None, kind: type) -> None:
    assert SendPacer.from_settings(Settings(redis_url=redis_url)).max_rps is None
    pacer = SendPacer.from_settings(Settings(redis_url=redis_url, provider_max_rps=12.5))
    assert pacer.max_rps == 12.5
    assert isinstance(pacer._cap, SharedCap)
    assert isinstance(pacer._cap.schedule, kind)
    await pacer.aclose()


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "fast"])
def test_provider_max_rps_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ValueError, match="provider_max_rps"):
        Settings(provider_max_rps=value)


def test_provider_max_rps_empty_means_no_cap() -> None:
    assert Settings(provider_max_rps="").provider_max_rps is None
    assert Settings(provider_max_rps="0.5").provider_max_rps == 0.5
